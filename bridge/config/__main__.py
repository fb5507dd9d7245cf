"""``python -m bridge.config --reference``: print the configuration reference (Markdown)."""

import sys

from bridge.config.reference import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
