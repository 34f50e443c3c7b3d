"Mix sweep: real (tiny) training runs in a process pool, MLflow parent/child runs, resume of a half-finished sweep."
import json
from pathlib import Path
import pytest
from forge_nb.core.embedded import domain_rows
from forge_nb.data.preparation import prepare
from forge_nb.workflow.sweeps import SweepConfig, sweep
from forge_nb.cli import main

@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp('sweepdata')
    src = d / 'dom.jsonl'; src.write_text(''.join(json.dumps(r) + '\n' for r in domain_rows(120)))
    return prepare(src, d / 'prep')

SMALL = dict(customer_percents=[100, 50], seeds=[0], steps=4, global_batch_size=4, general_items=2, general_qa_items=1, domain_items=4)

@pytest.mark.slow
def test_sweep_parallel_mlflow_and_resume(prepared, tmp_path):
    cfg = SweepConfig(**SMALL, workers=2, modules_to_save='embeddings')
    out = tmp_path / 'sw'
    r1 = sweep(prepared.paths['train'], prepared.paths['test'], cfg, out_dir=out, verbose=False)
    rc = json.loads((out / 'mix100-seed0' / 'train' / 'resolved_config.json').read_text())
    assert (rc['method'], rc['modules_to_save']) == ('lora', ['embed_tokens'])   # the sweep's training settings reach the trainer
    assert list(r1.runs.key) == ['base', 'mix100-seed0', 'mix50-seed0']
    assert set(r1.summary.index) == {'base', '100% customer', '50% customer'}
    assert (out / 'pareto.png').stat().st_size > 10_000
    import mlflow
    client = mlflow.MlflowClient(r1.tracking_uri)
    for rid in r1.runs.run_id:   # every run is a child of the sweep's parent run and carries its eval scores
        run = client.get_run(rid)
        assert run.data.tags['mlflow.parentRunId'] == r1.parent_run_id
        assert {'eval.general', 'eval.domain'} <= set(run.data.metrics)
    assert client.get_run(r1.parent_run_id).data.tags['forge_nb.recommended'] == r1.recommended
    # a half-finished sweep: one run lost its result; resuming redoes that run only
    (out / 'mix50-seed0' / 'result.json').unlink()
    r2 = sweep(prepared.paths['train'], prepared.paths['test'], cfg, out_dir=out, verbose=False)
    old, new = r1.runs.set_index('key').run_id, r2.runs.set_index('key').run_id
    assert new['base'] == old['base'] and new['mix100-seed0'] == old['mix100-seed0']
    assert new['mix50-seed0'] != old['mix50-seed0']
    # the folder belongs to this config: another config is refused rather than mixed in
    with pytest.raises(ValueError, match='another config'):
        sweep(prepared.paths['train'], prepared.paths['test'], SweepConfig(**{**SMALL, 'steps': 5}), out_dir=out, verbose=False)

def test_sweep_cli_errors(capsys):
    assert main(['sweep']) == 2 and 'give --demo' in capsys.readouterr().err
    assert main(['sweep', '--percents', '120']) == 2 and 'customer_percents: 120.0 must be in (0, 100]' in capsys.readouterr().err
