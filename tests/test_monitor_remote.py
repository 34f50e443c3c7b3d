"""Remote monitor: a HyperPod job served by the Kubernetes stand-in, its metrics from a real training run's MLflow run on a
real `mlflow server` on loopback; the job-side GPU figures, never the host's; unreachable services give a message, not an exception."""
import os, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from forge_nb.core.jobs import free_port
from forge_nb.training import TrainConfig, train, demo_records
from forge_nb.training.runtimes import SubprocessRuntime
from forge_nb.training import monitor as M
from forge_nb.training.monitor import read_progress, Monitor, RemoteProgress, JOB_TAG
from forge_nb.cloud.hyperpod import HyperPodRuntime
from forge_nb.cloud.k8s_standin import K8sStandIn
from conftest import start_server, stop_server

IMAGE = 'forge-nb:test'

def submit_standin_job(api, name):
    "A HyperPod job created through the stand-in's Kubernetes API (as `HyperPodRuntime.submit` does on a cluster)."
    return HyperPodRuntime(image_uri=IMAGE, kubeconfig=api.kubeconfig(), job_name=name).submit(
        {'config': TrainConfig(max_steps=6).to_dict(), 'train_data': '/fsx/d/mixed.jsonl', 'output_dir': f'/fsx/runs/{name}'})

@pytest.mark.slow   # a real mlflow server and a real (short) training run in a child process: about a minute
def test_remote_job_from_standin_and_mlflow(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from mlflow.entities import Metric
    # the notebook host has a (fake) GPU of its own: a remote job must never show it
    monkeypatch.setattr(M, 'gpu_stats', lambda: [dict(index=0, name='host', util_pct=11, mem_used_gib=1.0, mem_total_gib=8.0)])
    name = 'monitor-hp'
    srv, url = start_server(tmp_path / 'srv')
    try:
        cfg = TrainConfig(max_steps=6, global_batch_size=8, track=True, tracking_uri=url, experiment='t-remote', num_threads=1,
                          max_length=128, output_dir=str(tmp_path / 'run'))
        # the training process runs "inside the job": FORGE_NB_JOB_NAME is what the job's pods would set
        run = train(cfg, demo_records(48, seed=3), runtime=SubprocessRuntime(env={'FORGE_NB_JOB_NAME': name}))
        with K8sStandIn() as api:
            job = submit_standin_job(api, name)
            assert type(job).__name__ == 'HyperPodJob' and getattr(job, 'run_id', None) is None
            api.serve_log_file(name, Path(run.output_dir) / 'train.log')   # the pod's log is the run's log, as it grows
            api.set_state(name, 'Running')
            rp = RemoteProgress(job, tracking_uri=url, timeout_s=20)
            snaps, t0 = [], time.time()
            while run.status() not in ('completed', 'failed'):
                snaps.append(rp.read(n_log=5)); assert time.time() - t0 < 300; time.sleep(0.5)
            run.wait(timeout=60)
            steps = [s.step for s in snaps]
            assert steps == sorted(steps) and all(s.state == 'running' and s.remote for s in snaps)   # state from the stand-in
            # a GPU node would have logged these with its loss (this machine has no GPU): the job side's figures
            c = MlflowClient(url)
            assert c.get_run(run.run_id).data.tags[JOB_TAG] == name                             # found by its tag, not its id
            ts = int(time.time() * 1000)
            c.log_batch(run.run_id, metrics=[Metric(k, v, ts, s) for s in range(1, 7) for k, v in
                                             {'gpu/util_pct': 80.0 + s, 'gpu/mem_used_gib': 30.5, 'gpu/mem_total_gib': 80.0, 'gpu/count': 4.0}.items()])
            api.set_state(name, 'Succeeded')
            p = read_progress(job, tracking_uri=url, n_log=4)
            assert (p.state, p.step, p.max_steps, p.run_id, p.name, p.message) == ('completed', 6, 6, run.run_id, name, None)
            assert p.eta_s == 0.0 and p.elapsed_s is not None and p.elapsed_s > 0
            # the log tail is the stand-in's pod log (served from the run's train.log)
            assert p.log_tail == Path(run.output_dir, 'train.log').read_text().splitlines()[-4:]
            assert any('step 6/6' in l for l in job.log_lines(None))
            # per-step metrics: the run's MLflow history, step by step (and the same values the run folder holds)
            keys = ['loss', 'lr', 'grad_norm', 'tokens_per_s'] + [f'loss/{s}' for s in p.sources]
            assert p.sources == ['chat', 'customer', 'math'] and list(p.metrics.step) == [1, 2, 3, 4, 5, 6]
            for k in keys:
                hist = sorted(c.get_metric_history(run.run_id, k), key=lambda m: m.step)
                col = p.metrics.set_index('step')[k].dropna()           # a source missing from a step's batch has no value there
                assert dict(col) == {m.step: m.value for m in hist}, k
            local = run.history()
            assert list(p.metrics['loss']) == pytest.approx(list(local['loss'])) and list(p.metrics['lr']) == pytest.approx(list(local['lr']))
            # GPU: the job's own (latest) figures, not this host's NVML
            assert p.gpu == [{'source': 'job', 'index': 'job', 'count': 4.0, 'util_pct': 86.0, 'mem_used_gib': 30.5, 'mem_total_gib': 80.0}]
            assert 'GPU (job side, max of 4) 86% 30.5/80 GiB' in p.summary() and 'GPU0' not in p.summary()
            assert read_progress(run.output_dir).gpu[0]['name'] == 'host'                    # (a local run does read the host)
            # the widget, headless
            m = Monitor(job, tracking_uri=url, refresh_s=0.1)
            assert 'monitor-hp' in m.header.value and 'completed' in m.header.value and 'step 6/6' in m.header.value
            assert 'GPU (job side' in m.header.value and m.bar.value == 1.0 and m.bar.bar_style == 'success'
            assert m.plot.value[:4] == b'\x89PNG' and m.log.value.splitlines()[-4:] == p.log_tail
            # MLflow goes away mid-monitoring: the last metrics stay, the header says why, nothing raises
            stop_server(srv)
            m.remote.timeout_s = 3
            t0 = time.time(); q = m.refresh()
            assert time.time() - t0 < 15 and q.state == 'completed' and q.step == 6 and len(q.metrics) == 6
            assert q.message.startswith(f'MLflow at {url}:') and 'MLflow at' in m.header.value and 'forge-monitor-msg' in m.header.value
    finally: stop_server(srv)

def test_remote_monitor_with_services_down(tmp_path, monkeypatch):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    dead = f'http://127.0.0.1:{free_port()}'                  # nothing listens here: MLflow is down from the start
    with K8sStandIn() as api:
        job = submit_standin_job(api, 'down-hp')
        api.set_state('down-hp', 'Running', ['step 1/6 loss 2.0000'])
        assert read_progress(job, gpu=False).message == 'metrics: no MLflow tracking URI (pass tracking_uri=)'
        t0 = time.time()
        m = Monitor(job, tracking_uri=dead, timeout_s=2, refresh_s=0.2)
        p = m.progress
        assert time.time() - t0 < 10
        assert (p.state, p.log_tail, p.step, p.gpu) == ('running', ['step 1/6 loss 2.0000'], 0, [])   # the stand-in's part still shows
        assert p.message.startswith(f'MLflow at {dead}: TimeoutError') and 'running' in m.header.value
        q = m.refresh()                                       # the first MLflow call is still retrying: not a second one
        assert 'earlier call has not returned' in q.message
        m.start()
    q = m.refresh()                                           # the Kubernetes API is gone too: a message, the last state
    assert q.state == 'running' and q.message.startswith('status: ') and 'logs: ' in q.message and q.log_tail == ['step 1/6 loss 2.0000']
    time.sleep(0.5)
    assert m._thread.is_alive()                               # the refresh loop goes on
    m.stop(); m._thread.join(10)
    assert not m._thread.is_alive()

def test_job_side_gpu_metrics_are_logged_on_cuda(tmp_path, monkeypatch):
    "On a CUDA device each log step carries the node's GPU figures, to the run folder and MLflow alike (faked NVML: no GPU here)."
    import types, torch
    from forge_nb.core.jobs import RunFolder
    from forge_nb.training import engine
    fake = [dict(index=i, name='H200', util_pct=u, mem_used_gib=m, mem_total_gib=141.0) for i, (u, m) in enumerate([(97, 70.0), (89, 66.0)])]
    monkeypatch.setattr(engine, 'job_gpu_metrics', lambda: M.gpu_summary(fake))
    logged = []
    run = types.SimpleNamespace(folder=RunFolder(tmp_path), log=lambda msg: None,
                                tracker=types.SimpleNamespace(log_metrics=lambda m, step: logged.append((step, m))))
    last = {'loss': 2.0, 'loss/math': 2.0, 'lr': 1e-4, 'grad_norm': 1.0, 'tokens_per_s': 100.0}
    for dev in ('cuda', 'cpu'):
        lp = types.SimpleNamespace(device=torch.device(dev), samples=[{'source': 'math'}])
        engine._log_step(run, lp, [0], 1, 0, 4, 4, time.time() - 1, last, 10, 0.5)
    on_cuda, on_cpu = RunFolder(tmp_path).metrics()
    assert (on_cuda['gpu/util_pct'], on_cuda['gpu/util_pct_mean'], on_cuda['gpu/mem_used_gib'], on_cuda['gpu/count']) == (97.0, 93.0, 70.0, 2.0)
    assert logged[0] == (1, {**last, **M.gpu_summary(fake)}) and logged[1] == (1, last)
    assert not any(k.startswith('gpu/') for k in on_cpu)
