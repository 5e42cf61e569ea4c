"""``python -m pku_aigi.train ...`` / ``accelerate launch -m pku_aigi.train ...``."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
