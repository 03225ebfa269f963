"""`python -m painterid` (and `torchrun -m painterid`) runs the command line."""

from painterid.cli import main

if __name__ == "__main__":
    main()
