"""`python -m ritornello` runs the command line."""

from ritornello.cli import main

main()
