"""The remote monitor in a real JupyterLab + chromium: a HyperPod job served by the Kubernetes stand-in, its metrics in a
real `mlflow server` on loopback; the widget shows the job's state, step, job-side GPU figure, pod log and plot, and follows
the job to completed."""
import json, os, shutil, time
import pytest
from jlab import jupyterlab, lab_page, write_notebook, open_notebook, run_cell  # noqa: F401 (fixtures)
from test_monitor_remote import start_server, stop_server, submit_standin_job
from forge_nb.cloud.k8s_standin import K8sStandIn

NAME = 'browser-hp'
LOG = [f'12:00:{i:02d} step {i}/20 loss {3 - i / 10:.4f}' for i in range(1, 9)]

def _tracked_run(url):
    "The MLflow run a job's training process would have made by step 8 of 20 on a GPU node (tagged with the job's name)."
    from mlflow.tracking import MlflowClient
    from mlflow.entities import Metric, Param
    c = MlflowClient(url)
    rid = c.create_run(c.create_experiment('t-browser'), tags={'forge_nb.job': NAME}).info.run_id
    t0 = int(time.time() * 1000)
    c.log_batch(rid, params=[Param('total_steps', '20'), Param('max_steps', '20')], metrics=[
        Metric(k, v, t0 + 1000 * s, s) for s in range(1, 9) for k, v in
        {'loss': 3 - s / 10, 'loss/customer': 3.2 - s / 10, 'loss/math': 2.8 - s / 10, 'lr': 1e-4, 'tokens_per_s': 4.2e4,
         'gpu/util_pct': 91.0, 'gpu/mem_used_gib': 61.5, 'gpu/mem_total_gib': 141.0, 'gpu/count': 8.0}.items()])
    return rid

@pytest.mark.browser
def test_remote_monitor_in_jupyterlab(jupyterlab, lab_page, tmp_path):
    page = lab_page
    srv, url = start_server(tmp_path / 'srv')
    try:
        with K8sStandIn() as api:
            submit_standin_job(api, NAME)
            api.set_state(NAME, 'Running', LOG)
            _tracked_run(url)
            cell = (f"from forge_nb.cloud.hyperpod import HyperPodJob\nfrom forge_nb.training.monitor import monitor\n"
                    f"job = HyperPodJob({NAME!r}, kubeconfig=json.loads({json.dumps(api.kubeconfig())!r}))\n"
                    f"mon = monitor(job, tracking_uri={url!r}, refresh_s=0.5)\nmon")
            write_notebook(jupyterlab.root / 'remote.ipynb', ['import json\n' + cell])
            open_notebook(page, jupyterlab, 'remote.ipynb')
            run_cell(page, 0)
            header = page.locator('.forge-monitor-header')
            header.wait_for(timeout=90000)
            page.wait_for_function("() => document.querySelector('.forge-monitor-header').innerText.includes('step 8/20')", timeout=60000)
            h = header.inner_text()
            assert NAME in h and 'running' in h and 'loss 2.2000' in h and 'ETA' in h
            assert 'GPU (job side, max of 8) 91% 61.5/141 GiB' in h            # the job's GPUs (this machine has none)
            log = page.locator('.forge-monitor-log textarea').input_value()
            assert log.splitlines() == LOG                                       # the stand-in's pod log
            page.wait_for_function("""() => { const e = document.querySelector('.forge-monitor-plot');
                const img = e && (e.tagName === 'IMG' ? e : e.querySelector('img')); return img && img.complete && img.naturalWidth > 100; }""",
                timeout=30000)
            # the job finishes on the "cluster": the widget follows without another cell being run
            api.add_logs(NAME, ['12:00:20 done: adapter saved'])
            api.set_state(NAME, 'Succeeded')
            page.wait_for_function("() => document.querySelector('.forge-monitor-header').innerText.includes('completed')", timeout=30000)
            page.wait_for_function("() => document.querySelector('.forge-monitor-log textarea').value.includes('done: adapter saved')",
                                   timeout=30000)
            assert page.locator('.forge-monitor-bar .progress-bar-success').count() == 1
            assert 'elapsed' in header.inner_text() and 'monitor error' not in header.inner_text()
            shot = tmp_path / 'remote_monitor.png'
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get('FORGE_SHOT_DIR'): shutil.copy(shot, os.environ['FORGE_SHOT_DIR'])
    finally: stop_server(srv)
