"""Reusable JupyterLab + Playwright + Debian chromium helpers for browser tests (recipe: shared/reference/env_nb.md §3).

Use from a test module (pytest puts `tests/` on sys.path):

    from jlab import jupyterlab, lab_page, write_notebook, open_notebook, run_cell  # noqa: F401 (fixtures)

    @pytest.mark.browser
    def test_x(jupyterlab, lab_page):
        write_notebook(jupyterlab.root / 'x.ipynb', ["import ipywidgets as W; W.IntSlider()"])
        open_notebook(lab_page, jupyterlab, 'x.ipynb'); run_cell(lab_page, 0)
        lab_page.locator('.widget-slider .noUi-handle').wait_for()

Everything runs on 127.0.0.1 with HOME, Jupyter and IPython dirs isolated in a temporary folder; nothing touches the
network or the real home directory. Tests skip (not fail) when chromium or playwright is missing.
"""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.error, urllib.request
from dataclasses import dataclass
from pathlib import Path
import pytest
from forge_nb.core.jobs import free_port

CHROMIUM = os.environ.get('FORGE_CHROMIUM', '/usr/bin/chromium')
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
REPO = Path(__file__).resolve().parents[1]

@dataclass
class Lab:
    base: str    # http://127.0.0.1:PORT
    token: str
    root: Path   # the server's root_dir: write notebooks here
    env: dict    # isolated environment (HOME, JUPYTER_*, IPYTHONDIR)
    home: Path

    def url(self, path: str) -> str: return f"{self.base}/{path.lstrip('/')}{'&' if '?' in path else '?'}token={self.token}"

    def get(self, path: str, timeout: float = 5):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as r: return json.loads(r.read())

def isolated_env(tmp: Path) -> dict:
    "Environment with HOME, Jupyter and IPython dirs under `tmp`; the Jupyter news toast is disabled."
    dirs = {k: tmp / v for k, v in dict(HOME='home', JUPYTER_CONFIG_DIR='jcfg', JUPYTER_DATA_DIR='jdata',
                                         JUPYTER_RUNTIME_DIR='jrun', IPYTHONDIR='ipython').items()}
    for d in dirs.values(): d.mkdir(parents=True, exist_ok=True)
    (dirs['JUPYTER_CONFIG_DIR'] / 'labconfig').mkdir(exist_ok=True)
    (dirs['JUPYTER_CONFIG_DIR'] / 'labconfig' / 'page_config.json').write_text(
        json.dumps({'disabledExtensions': {'@jupyterlab/apputils-extension:announcements': True}}))
    env = dict(os.environ, **{k: str(v) for k, v in dirs.items()})
    env['PYTHONPATH'] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true').items():
        env.setdefault(k, v)
    return env

def _need_browser():
    if not Path(CHROMIUM).exists(): pytest.skip(f'chromium not found at {CHROMIUM}')
    pytest.importorskip('playwright.sync_api')

@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on 127.0.0.1 with isolated dirs; yields a `Lab`."
    _need_browser()
    root = tmp_path / 'lab'; root.mkdir()
    env, token, port = isolated_env(tmp_path), secrets.token_hex(16), free_port()
    log = open(tmp_path / 'jupyterlab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--ip=127.0.0.1', f'--port={port}', '--no-browser', '--allow-root',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}'],
                            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(f'http://127.0.0.1:{port}', token, root, env, Path(env['HOME']))
    try:
        t0 = time.time()
        while True:
            try:
                lab.get('api/status', timeout=2); break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.time() - t0 > 60:
                    raise RuntimeError(f'JupyterLab did not start; log:\n{(tmp_path / "jupyterlab.log").read_text()[-3000:]}')
                time.sleep(0.3)
        yield lab
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(5)
        log.close()

@pytest.fixture
def lab_page(jupyterlab, tmp_path):
    "A Playwright page in headless Debian chromium (isolated profile and HOME)."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / 'udd'), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                   viewport={'width': 1200, 'height': 900}, env=dict(os.environ, HOME=str(jupyterlab.home)))
        try: yield ctx.pages[0] if ctx.pages else ctx.new_page()
        finally: ctx.close()

def write_notebook(path, cells) -> Path:
    "Write a minimal notebook whose code cells are `cells` (strings)."
    nb = {'cells': [{'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'outputs': [], 'source': c} for c in cells],
          'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    Path(path).write_text(json.dumps(nb)); return Path(path)

def wait_kernel_connected(lab: Lab, timeout: float = 60):
    "Poll /api/kernels until a kernel has a browser connection and is idle (HTTP 500 while starting means 'not yet')."
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            ks = lab.get('api/kernels')
            if any(k.get('connections', 0) >= 1 and k.get('execution_state') == 'idle' for k in ks): return
        except (urllib.error.HTTPError, urllib.error.URLError, OSError): pass
        time.sleep(0.25)
    raise TimeoutError('kernel never connected/idle')

def open_notebook(page, lab: Lab, name: str, timeout: float = 60):
    "Open `name` (relative to the lab root) and wait until its editor shows and its kernel is connected."
    page.goto(lab.url(f'lab/tree/{name}'))
    page.locator('.jp-Notebook .jp-Cell .jp-InputArea-editor').first.wait_for(timeout=timeout * 1000)
    wait_kernel_connected(lab, timeout)

def run_cell(page, i: int = 0):
    "Select cell `i` and run it with the toolbar's run button."
    page.locator('.jp-Notebook .jp-Cell').nth(i).click()
    page.locator(".jp-Toolbar [data-command='notebook:run-cell-and-select-next']").click()
