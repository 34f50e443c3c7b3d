"Shared pytest set-up: offline, quiet, telemetry off, and fixtures every stage's tests use."
import os
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_HUB_DISABLE_TELEMETRY='1',
                 MLFLOW_DISABLE_TELEMETRY='true', DO_NOT_TRACK='true', TOKENIZERS_PARALLELISM='false',
                 TRANSFORMERS_VERBOSITY='error', PYTHONHASHSEED='0').items():
    os.environ.setdefault(k, v)
import pytest
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
