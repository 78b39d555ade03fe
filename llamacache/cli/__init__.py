"""The command-line interface: parses, calls one op, renders. No cache logic here."""
