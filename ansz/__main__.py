"""``python -m ansz`` runs the ``ansz`` command."""

from ansz.cli import main

if __name__ == "__main__":
    main(prog_name="python -m ansz")
