"""MLflow: a real `mlflow server` on 127.0.0.1 (sqlite backend); the run is read back; a server that dies mid-run does not
stop training, and one restarted mid-run gets every metric (buffered while it was away, flushed after)."""
import json, os, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from forge_nb.training import TrainConfig, train, demo_records
from conftest import start_server, stop_server, free_port

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

def _train_until_metrics_flow(tmp_path, url, experiment):
    "A 60-step subprocess training run against `url`; returns the job once its first losses reached the server."
    from mlflow.tracking import MlflowClient
    cfg = TrainConfig(max_steps=60, global_batch_size=8, lr=1e-3, tracking_uri=url, experiment=experiment,
                      output_dir=str(tmp_path / 'run'), num_threads=1, max_length=128)
    job = train(cfg, demo_records(48, seed=4), runtime='subprocess')
    t0 = time.time()
    while True:                           # wait until metrics are flowing to the server
        rid = job.run_id
        if rid and MlflowClient(url).get_metric_history(rid, 'loss'): return job
        assert job.status() not in ('completed', 'failed') and time.time() - t0 < 180, job.logs(20)
        time.sleep(0.2)

@pytest.mark.slow
def test_server_restarted_mid_run_no_metric_lost(tmp_path, monkeypatch):
    "Kill the server once metrics flow, bring it back on the same port and store: every step's loss arrives, the run ends FINISHED."
    from mlflow.tracking import MlflowClient
    monkeypatch.setenv('FORGE_NB_TRACKING_END_WAIT', '240')   # a server can take a while to start on a busy 2-core machine
    d = tmp_path / 'srv'; d.mkdir()
    p, url = start_server(d)
    p2 = None
    try:
        job = _train_until_metrics_flow(tmp_path, url, 't-restart')
        rid = job.run_id
        stop_server(p); t_kill = time.time()
        time.sleep(3)
        p2, url2 = start_server(d, port=int(url.rsplit(':', 1)[1]), log='server2.log')
        assert url2 == url
        back_after, at_restart = time.time() - t_kill, int(job.folder.status().get('step') or 0)
        job.wait(timeout=400)
        c = MlflowClient(url)
        run = c.get_run(rid)
        hist = c.get_metric_history(rid, 'loss')
        arts = {a.path for a in c.list_artifacts(rid)}
    finally:
        stop_server(p)
        if p2: stop_server(p2)
    assert job.status() == 'completed' and job.history().step.max() == 60
    steps = sorted(m.step for m in hist)
    assert steps == list(range(1, 61)), steps                  # none lost, none twice
    assert run.info.status == 'FINISHED' and run.data.params['lr'] == '0.001'
    assert {'adapter', 'resolved_config.json'} <= arts
    log = '\n'.join(job.logs(None))
    away = [l for l in log.splitlines() if 'is unreachable' in l]; back = [l for l in log.splitlines() if 'is back after' in l]
    assert len(away) == 1 and len(back) == 1 and 'flushed' in back[0], log[-3000:]
    assert 'not delivered' not in log and 'continuing without tracking' not in log
    print(f'mlflow restart: server away {back_after:.1f} s (restarted at step {at_restart}); {back[0][back[0].index("is back"):]}; '
          f'loss steps in MLflow {len(steps)}/60')

@pytest.mark.slow
def test_server_dies_mid_run_training_continues(tmp_path, monkeypatch):
    "The server never comes back: training completes, the run folder has every metric, and the log says what was not delivered."
    monkeypatch.setenv('FORGE_NB_TRACKING_END_WAIT', '4')   # the child inherits it: a short last attempt
    d = tmp_path / 'srv'; d.mkdir()
    p, url = start_server(d)
    try:
        job = _train_until_metrics_flow(tmp_path, url, 't-die')
        stop_server(p)
        job.wait(timeout=300)
    finally: stop_server(p)
    assert job.status() == 'completed' and job.history().step.tolist() == list(range(1, 61))
    log = '\n'.join(job.logs(None))
    assert log.count('is unreachable') == 1 and log.count('were not delivered') == 1, log[-3000:]
    assert 'is back after' not in log
    assert Path(job.model_path, 'adapter_model.safetensors').exists()
    print('mlflow never back:', [l for l in log.splitlines() if 'were not delivered' in l][0][-260:])

@pytest.mark.slow
def test_tracker_buffers_while_server_is_away_then_flushes(tmp_path):
    "A `Tracker` on a closed port buffers (bounded), then a real server comes up on that port: everything kept arrives, in order."
    from forge_nb.core.tracking import Tracker
    from mlflow.tracking import MlflowClient
    port = free_port(); lines = []
    tr = Tracker(f'http://127.0.0.1:{port}', 't-buf', log=lines.append, max_buffer=30, retry_every=(0.2, 1.0), end_wait=30)
    t0 = time.time()
    assert tr.start('buffered', {'lr': 0.1}, tags={'stage': 'unit'}) is None
    for s in range(1, 21): tr.log_metrics({'loss': 1 / s, 'acc': s / 20}, step=s)
    tr.set_tags({'late': 'yes'})
    assert time.time() - t0 < 10                                # a dead server costs little
    assert (tr.buffered, tr.dropped, tr.run_id) == (30, 10, None) and tr.failures >= 1
    d = tmp_path / 'srv'; d.mkdir()
    p, url = start_server(d, port=port)
    try:
        time.sleep(1.1)                                         # past the retry interval
        tr.log_metrics({'loss': 0.01, 'acc': 1.0}, step=21)     # the next call finds it back and flushes
        assert tr.away_since is None and tr.run_id and tr.buffered == 0, lines
        tr.end()
        c = MlflowClient(url); run = c.get_run(tr.run_id)
        loss = [(m.step, m.value) for m in c.get_metric_history(tr.run_id, 'loss')]
    finally: stop_server(p)
    assert sorted(loss) == [(s, 1 / s) for s in range(6, 21)] + [(21, 0.01)]   # the 5 oldest steps (10 values) were dropped
    assert run.info.status == 'FINISHED' and run.data.params == {'lr': '0.1'} and run.data.tags['late'] == 'yes'
    assert run.data.tags['stage'] == 'unit' and run.info.run_name == 'buffered'
    assert (tr.flushed, tr.dropped, tr.lost) == (30, 10, 0)            # step 21 went straight through, after the flush
    assert len([l for l in lines if 'is unreachable' in l]) == 1 and len([l for l in lines if 'buffer full' in l]) == 1
    back = [l for l in lines if 'is back after' in l]
    assert len(back) == 1 and 'flushed 30 metrics, 1 params, 1 tags' in back[0] and '10 older metric values were dropped' in back[0], lines
