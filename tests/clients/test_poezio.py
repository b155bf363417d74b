#!/usr/bin/python3
"""poezio, run as an unprivileged user in tmux, joins an IRC channel through
causeway as a person would (see tui.py for the walk and what is checked).
Screen captures are kept in $CW_ARTIFACTS (default ./clients-artifacts).

  CAUSEWAY_BIN=/path/to/causeway /usr/bin/python3 tests/clients/test_poezio.py
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tui                                      # noqa: E402

if __name__ == "__main__":
    sys.exit(tui.main(tui.Poezio))
