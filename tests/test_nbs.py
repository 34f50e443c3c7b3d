"""Run every lesson notebook the way `nbdev-test` does, one pytest item each.

`slow` means the same here as for pytest: minutes of work, run by the full check (`make check`). Cells flagged with
the other tst_flags are skipped: `gpu` (needs CUDA), `aws` (a real account), `browser`, `notest` (never run
automatically, e.g. a sweep of many minutes whose results are committed)."""
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

CFG = get_config(Path(__file__).parent)
NBS = sorted(p for p in CFG.nbs_path.glob('**/*.ipynb')
             if not any(x.startswith(('_', '.')) for x in p.relative_to(CFG.nbs_path).parts))

SKIP = [f for f in CFG.tst_flags.split() if f != 'slow']

@pytest.mark.parametrize('nb', NBS, ids=[p.name for p in NBS])
def test_notebook(nb):
    ok, _ = run_nb(nb, skip_flags=SKIP, basepath=CFG.config_path)
    assert ok, f'{nb.name} failed (traceback above)'
