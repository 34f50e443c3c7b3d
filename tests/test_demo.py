"The main job: `forge-nb demo` end to end as a user runs it, and what it leaves behind (run folder, MLflow run)."
import json, os, subprocess, sys
from pathlib import Path
import pytest

@pytest.mark.slow
def test_forge_nb_demo_command(tmp_path):
    out = tmp_path / 'demo'
    env = dict(os.environ, HF_HUB_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true')
    p = subprocess.run([sys.executable, '-m', 'forge_nb.cli', 'demo', '--out', str(out), '--steps', '8'], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for stage in ('prepare', 'mix', 'train', 'evaluate'): assert f'[forge_nb] {stage}' in p.stdout
    assert 'fine-tuned' in p.stdout and 'Advice:' in p.stdout
    # everything under the run folder, nothing else written next to it
    assert sorted(x.name for x in tmp_path.iterdir()) == ['demo']
    for f in ('prepared/train.jsonl', 'prepared/test.jsonl', 'prepared/rejects.jsonl', 'mix/manifest.parquet', 'mix/report.json',
              'demo_result.json', 'mlflow.db'):
        assert (out / f).exists(), f
    res = json.loads((out / 'demo_result.json').read_text())
    assert [r['model'] for r in res['table']] == ['base', 'fine-tuned']
    # the MLflow store holds the training run with its parameters and metrics
    import mlflow
    client = mlflow.MlflowClient(res['tracking_uri'])
    run = client.get_run(res['run_id'])
    assert run.data.params['method'] == 'lora' and float(run.data.params['mix.customer_data_percent']) == 50.0
    hist = client.get_metric_history(res['run_id'], 'loss')
    assert len(hist) >= 8 and all(h.value > 0 for h in hist)
    # evaluation metrics are logged too, for both models
    runs = client.search_runs([run.info.experiment_id] + [e.experiment_id for e in client.search_experiments()], max_results=50)
    metric_keys = set().union(*(r.data.metrics for r in runs))
    assert any(k.startswith('general') for k in metric_keys) and any(k.startswith('domain') for k in metric_keys)

def test_real_model_offline_without_cached_samples_falls_back_loudly(tmp_path, monkeypatch, capsys):
    "A real (non-embedded) model offline with no cached catalog sample: the demo mixes the synthetic samples and says so."
    import shutil
    from forge_nb.core.embedded import tiny_model_path, domain_rows
    from forge_nb.data import prepare
    from forge_nb.workflow.demo import DemoConfig, demo_mix
    monkeypatch.setenv('HF_HUB_OFFLINE', '1'); monkeypatch.setenv('FORGE_NB_CATALOG_CACHE', str(tmp_path / 'empty-cache'))
    model = tmp_path / 'my-model'; shutil.copytree(tiny_model_path(), model)     # not the embedded path: the verified catalog applies
    prep = prepare(domain_rows(120, seed=0), tmp_path / 'prepared', seed=0)
    res = demo_mix(DemoConfig(model=str(model), steps=4), prep)
    out = capsys.readouterr().out
    assert 'WARNING' in out and 'no cached sample' in out and 'synthetic offline samples' in out
    assert len(res.records) == 4 * DemoConfig().global_batch_size
    assert {r['source'] for r in res.records} - {'customer'}      # general data is in the mix
