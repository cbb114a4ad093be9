"""python -m pipeline -> the veille command line."""

from pipeline.cli import main

if __name__ == "__main__":  # parser children re-import __main__: do not run the CLI there
    main()
