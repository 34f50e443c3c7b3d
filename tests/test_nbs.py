"Run every lesson notebook the way `nbdev-test` does (cells flagged with tst_flags are skipped), one pytest item each."
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

CFG = get_config(Path(__file__).parent)
NBS = sorted(p for p in CFG.nbs_path.glob('**/*.ipynb')
             if not any(x.startswith(('_', '.')) for x in p.relative_to(CFG.nbs_path).parts))

@pytest.mark.parametrize('nb', NBS, ids=[p.name for p in NBS])
def test_notebook(nb):
    ok, _ = run_nb(nb, skip_flags=CFG.tst_flags.split(), basepath=CFG.config_path)
    assert ok, f'{nb.name} failed (traceback above)'
