"""Operations behind the commands: each a function that returns a frozen report.

Nothing here prints or imports typer/rich; progress goes through a plain callback.
"""
