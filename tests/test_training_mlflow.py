"MLflow: a real `mlflow server` on 127.0.0.1 (sqlite backend); the run is read back; a dying server does not stop training."
import json, os, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from forge_nb.training import TrainConfig, train, demo_records

def _free_port():
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def start_server(d: Path):
    port = _free_port()
    mlflow = Path(sys.executable).with_name('mlflow')
    p = subprocess.Popen([str(mlflow), 'server', '--backend-store-uri', f'sqlite:///{d}/mlflow.db', '--default-artifact-root',
                          str(d / 'artifacts'), '--host', '127.0.0.1', '--port', str(port), '--workers', '1'],
                         stdout=open(d / 'server.log', 'wb'), stderr=subprocess.STDOUT, start_new_session=True,
                         env={**os.environ, 'MLFLOW_DISABLE_TELEMETRY': 'true'})
    url = f'http://127.0.0.1:{port}'
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            if urllib.request.urlopen(url + '/health', timeout=2).status == 200: return p, url
        except Exception: time.sleep(0.5)
        assert p.poll() is None, (d / 'server.log').read_text()[-2000:]
    raise RuntimeError('mlflow server did not start: ' + (d / 'server.log').read_text()[-2000:])

def stop_server(p):
    try: os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError: pass
    try: p.wait(timeout=5)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()

@pytest.fixture(scope='module')
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp('mlflow')
    p, url = start_server(d)
    yield url
    stop_server(p)

def _mixed():
    from forge_nb import mixing
    from forge_nb.core.embedded import domain_rows
    cust = [{'messages': [{'role': 'user', 'content': r['question']}, {'role': 'assistant', 'content': r['answer']}]}
            for r in domain_rows(40, seed=5)]
    return mixing.mix(cust, mixing.MixConfig(customer_data_percent=50.0), n_examples=64, seed=0)

@pytest.mark.slow
def test_run_logged_to_server_and_read_back(tmp_path, server):
    from mlflow.tracking import MlflowClient
    res = _mixed()
    cfg = TrainConfig(max_steps=3, global_batch_size=8, lr=1e-3, track=True, tracking_uri=server, experiment='t-train',
                      run_name='srv', output_dir=str(tmp_path / 'run'), num_threads=1, max_length=128)
    job = train(cfg, res.records, mix=res, echo=False)
    assert job.run_id
    c = MlflowClient(server)
    run = c.get_run(job.run_id)
    assert run.info.status == 'FINISHED' and run.info.run_name == 'srv'
    p = run.data.params
    assert p['lr'] == '0.001' and p['method'] == 'lora' and p['model'].endswith('tiny-chat')
    assert p['mix.customer_data_percent'] == '50.0' and len(p['data.train.sha256']) == 16 and p['data.train.n'] == '64'
    assert int(p['data.train.n.customer']) == 32
    for k in ('loss', 'loss/customer', 'lr', 'grad_norm', 'tokens_per_s'):
        assert [m.step for m in c.get_metric_history(job.run_id, k)] == [1, 2, 3], k
    srcs = {k for k in run.data.metrics if k.startswith('loss/')}
    assert 'loss/customer' in srcs and len(srcs) >= 3
    arts = {a.path for a in c.list_artifacts(job.run_id)}
    assert {'adapter', 'mix', 'resolved_config.json'} <= arts
    assert {'adapter/adapter_model.safetensors', 'adapter/tokenizer.json'} <= {a.path for a in c.list_artifacts(job.run_id, 'adapter')}
    assert {'mix/report.json', 'mix/manifest.parquet'} <= {a.path for a in c.list_artifacts(job.run_id, 'mix')}

@pytest.mark.slow
def test_server_dies_mid_run_training_continues(tmp_path):
    d = tmp_path / 'srv'; d.mkdir()
    p, url = start_server(d)
    try:
        cfg = TrainConfig(max_steps=60, global_batch_size=8, lr=1e-3, tracking_uri=url, experiment='t-die',
                          output_dir=str(tmp_path / 'run'), num_threads=1, max_length=128)
        job = train(cfg, demo_records(48, seed=4), runtime='subprocess')
        from mlflow.tracking import MlflowClient
        t0 = time.time()
        while True:                       # wait until metrics are flowing to the server, then kill it
            rid = job.run_id
            if rid and MlflowClient(url).get_metric_history(rid, 'loss'): break
            assert job.status() not in ('completed', 'failed') and time.time() - t0 < 180, job.logs(20)
            time.sleep(0.2)
        stop_server(p)
        job.wait(timeout=300)
    finally: stop_server(p)
    assert job.status() == 'completed' and job.history().step.max() == 60
    log = '\n'.join(job.logs(None))
    assert log.count('continuing without tracking') == 1, log[-3000:]
    assert Path(job.model_path, 'adapter_model.safetensors').exists()
