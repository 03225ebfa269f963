"""`python -m painterid.cli` runs the command line (as `python -m painterid`)."""

from painterid.cli.main import main

if __name__ == "__main__":
    main()
