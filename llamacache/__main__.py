"""``python -m llamacache`` runs the CLI."""

from llamacache.cli.main import main

if __name__ == "__main__":
    main()
