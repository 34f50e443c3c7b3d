"Shared pytest set-up: offline, quiet, telemetry off, and fixtures every stage's tests use."
import os
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_HUB_DISABLE_TELEMETRY='1',
                 MLFLOW_DISABLE_TELEMETRY='true', DO_NOT_TRACK='true', TOKENIZERS_PARALLELISM='false',
                 TRANSFORMERS_VERBOSITY='error', PYTHONHASHSEED='0').items():
    os.environ.setdefault(k, v)
import pytest, signal, subprocess, sys, time, urllib.request
from pathlib import Path
from forge_nb.core.jobs import free_port   # the project's one helper; tests import it from here

@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    "Run the test with the working directory in a fresh temporary folder (MLflow's default store lands there)."
    monkeypatch.chdir(tmp_path); return tmp_path

def pytest_collection_modifyitems(config, items):
    "`gpu` tests skip without CUDA; `hub` tests (real Hugging Face hub reads) skip unless FORGE_NB_HUB=1 — both with a reason."
    import torch
    cuda = torch.cuda.is_available()
    hub = os.environ.get('FORGE_NB_HUB') == '1' and os.environ.get('HF_HUB_OFFLINE') != '1'
    for it in items:
        if 'gpu' in it.keywords and not cuda: it.add_marker(pytest.mark.skip(reason='needs CUDA (no GPU on this machine)'))
        if 'hub' in it.keywords and not hub:
            it.add_marker(pytest.mark.skip(reason='needs the Hugging Face hub: run with FORGE_NB_HUB=1 HF_HUB_OFFLINE=0 on a machine with network'))

@pytest.fixture
def aws(monkeypatch):
    "moto's fake AWS (S3, IAM, STS, SageMaker, ...) with test credentials and no endpoint override."
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_SESSION_TOKEN='testing',
                     AWS_DEFAULT_REGION='us-east-1').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False)
    from moto import mock_aws
    with mock_aws(): yield

# a real `mlflow server` (sqlite backend) on 127.0.0.1, for the tracking and monitor tests
def start_server(d: Path, port: int|None=None, log: str='server.log'):
    "`mlflow server` with its store and artifacts in `d` (on `port`, default a free one); returns `(process, url)` once healthy."
    port = port or free_port(); Path(d).mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name('mlflow')
    p = subprocess.Popen([str(mlflow), 'server', '--backend-store-uri', f'sqlite:///{d}/mlflow.db', '--default-artifact-root',
                          str(d / 'artifacts'), '--host', '127.0.0.1', '--port', str(port), '--workers', '1'],
                         stdout=open(d / log, 'wb'), stderr=subprocess.STDOUT, start_new_session=True,
                         env={**os.environ, 'MLFLOW_DISABLE_TELEMETRY': 'true'})
    url = f'http://127.0.0.1:{port}'
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            if urllib.request.urlopen(url + '/health', timeout=2).status == 200: return p, url
        except Exception: time.sleep(0.5)
        assert p.poll() is None, (d / log).read_text()[-2000:]
    raise RuntimeError('mlflow server did not start: ' + (d / log).read_text()[-2000:])

def stop_server(p):
    try: os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError: pass
    try: p.wait(timeout=5)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()

def sharded_and_single(tmp: Path, cfg: dict, recs, ev=None, nproc: int=2, name: str='sharded', timeout: float=900):
    "The same training config run over `nproc` torchrun processes (`tmp/name`) and in one process (`tmp/one`): (job, one)."
    from forge_nb.training import TrainConfig, train
    job = train(TrainConfig(**cfg, output_dir=str(tmp / name)), recs, ev, runtime='torchrun', nproc=nproc).wait(timeout=timeout)
    log = tmp / name / 'stdout.log'
    assert job.status() == 'completed', '\n'.join(job.logs(80)) + (log.read_text()[-3000:] if log.exists() else '')
    one = train(TrainConfig(**cfg, output_dir=str(tmp / 'one')), recs, ev, echo=False)
    assert one.status() == 'completed'
    return job, one

def saved_weights(folder) -> dict:
    "A saved model's weights, as transformers reloads them."
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()

def assert_same_plain_hf_model(path, reference, atol=1e-4, rtol=1e-4) -> dict:
    "`path` is a plain Hugging Face Llama folder (safetensors, tokenizer, tied head stored once) whose weights equal `reference`'s; returns its raw tensors."
    import json, torch
    from safetensors.torch import load_file
    path = Path(path)
    assert (path / 'model.safetensors').exists() and (path / 'tokenizer.json').exists()
    assert json.loads((path / 'config.json').read_text())['architectures'] == ['LlamaForCausalLM']
    saved = load_file(path / 'model.safetensors')
    assert 'lm_head.weight' not in saved            # the tied head is stored once, as transformers does
    a, b = saved_weights(reference), saved_weights(path)
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(b[k], a[k], atol=atol, rtol=rtol)
    return saved
