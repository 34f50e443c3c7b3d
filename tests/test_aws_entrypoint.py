"The SageMaker container contract, run for real in a subprocess against a faithful /opt/ml layout, and the model it leaves reached through the job's result on moto."
import json, os, subprocess, sys, tarfile
from pathlib import Path
import pytest
from forge_nb.core.records import write_records
from forge_nb.cloud.entrypoint import opt_ml_layout, container_env, launch_command
from forge_nb.cloud.sagemaker import SageMakerRuntime, build_wheel, stage_plan
from forge_nb.training import demo_records

ROLE = 'arn:aws:iam::123456789012:role/SageMakerRole'
HP = {'max_steps': '2', 'save_steps': '1', 'global_batch_size': '4', 'micro_batch_size': '4', 'eval_steps': '2', 'track': 'false', 'lora_r': '4'}

def _run(root, **env):
    return subprocess.run([sys.executable, '-m', 'forge_nb.cloud.entrypoint'], capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'FORGE_NB_OPT_ML': str(root), 'SM_NUM_GPUS': '0', **env})

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "One real run of the entrypoint: train + validation channels, the embedded tiny model, two steps."
    tmp = tmp_path_factory.mktemp('sm')
    tr, ev = write_records(demo_records(16), tmp / 'mixed.jsonl'), write_records(demo_records(8, seed=1), tmp / 'heldout.jsonl')
    root = opt_ml_layout(tmp / 'opt_ml', HP, {'train': tr, 'validation': ev})
    return root, _run(root)

def test_entrypoint_trains_from_the_channels_and_leaves_the_model_in_model_dir(trained):
    root, r = trained
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    job = json.loads((root / 'output/data/job.json').read_text())
    assert job['train_data'] == str(root / 'input/data/train/mixed.jsonl') and job['eval_data'] == str(root / 'input/data/validation/heldout.jsonl')
    assert job['config'] == HP                                                    # SageMaker's strings, parsed by forge-nb train
    model = root / 'model'
    assert (model / 'adapter_config.json').exists() and any(model.glob('adapter_model*'))
    meta = json.loads((model / 'forge_nb.json').read_text())
    assert meta['kind'] == 'adapter' and 'eval_loss' in meta['metrics']
    assert {'status.json', 'metrics.jsonl', 'train.log'} <= {p.name for p in (root / 'output/data').iterdir()}
    assert any((root / 'checkpoints' / 'checkpoints').iterdir())                   # synced to S3 for resume
    assert json.loads((root / 'input/config/hyperparameters.json').read_text()) == HP and not (root / 'output/failure').exists()

def test_entrypoint_resumes_from_checkpoints(trained, tmp_path):
    "A restarted (e.g. Spot-interrupted) job finds /opt/ml/checkpoints filled (step 1: the last step saves the model, not a checkpoint) and carries on to step 3."
    import shutil
    root, _ = trained
    shutil.copytree(root, tmp_path / 'opt_ml'); r2 = tmp_path / 'opt_ml'
    (r2 / 'input/config/hyperparameters.json').write_text(json.dumps({**HP, 'max_steps': '3'}))
    r = _run(r2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'resumed from step-000001' in (r2 / 'checkpoints/train.log').read_text()
    assert json.loads((r2 / 'output/data/status.json').read_text())['step'] == 3

def test_entrypoint_failure_reason(tmp_path):
    data = write_records(demo_records(8), tmp_path / 'd.jsonl')
    root = opt_ml_layout(tmp_path / 'opt_ml', {'lr': 'fast'}, {'train': data})
    r = _run(root)
    assert r.returncode == 2 and (root / 'output/failure').read_text().startswith('forge-nb train exited with 2')
    assert not any((root / 'model').iterdir())

def test_multi_node_launch_command(tmp_path):
    root = opt_ml_layout(tmp_path, {}, {'train': write_records(demo_records(8), tmp_path / 'd.jsonl')},
                         hosts=['algo-1', 'algo-2', 'algo-3', 'algo-4'], current_host='algo-3')
    ce = container_env({'FORGE_NB_OPT_ML': str(root), 'SM_NUM_GPUS': '8'})
    cmd = launch_command(ce, '/opt/ml/output/data/job.json')
    assert cmd[:6] == ['torchrun', '--nnodes=4', '--nproc_per_node=8', '--node_rank=2', '--master_addr=algo-1', '--master_port=29500']
    assert cmd[6:] == ['-m', 'forge_nb.cli', 'train', '--config', '/opt/ml/output/data/job.json', '--output-dir', str(root / 'checkpoints'), '--resume']
    # SM_* variables (the training toolkit's) win over the files
    ce2 = container_env({'FORGE_NB_OPT_ML': str(root), 'SM_NUM_GPUS': '1', 'SM_HOSTS': '["algo-1"]', 'SM_CURRENT_HOST': 'algo-1',
                         'SM_CHANNEL_TRAIN': str(tmp_path), 'SM_MODEL_DIR': str(tmp_path / 'm')})
    assert (ce2.is_leader, ce2.model_dir, launch_command(ce2, 'j', python='python')[0]) == (True, tmp_path / 'm', 'python')

def test_moto_job_result_resolves_to_the_model(trained, tmp_path, monkeypatch):
    "Submit with a real wheel and local data (staged under the run prefix); SageMaker's upload of /opt/ml/model is replayed; download_model gets the adapter."
    root, r = trained
    assert r.returncode == 0
    for k, v in dict(AWS_ACCESS_KEY_ID='t', AWS_SECRET_ACCESS_KEY='t', AWS_SESSION_TOKEN='t', AWS_DEFAULT_REGION='us-east-1').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False)
    import boto3
    from moto import mock_aws
    wheel = build_wheel(tmp_path / 'dist')
    assert wheel.name.startswith('forge_nb-') and wheel.suffix == '.whl'
    with mock_aws():
        s3 = boto3.client('s3'); s3.create_bucket(Bucket='forge-bucket')
        rt = SageMakerRuntime(role_arn=ROLE, s3_prefix='s3://forge-bucket/medreason/lora-50', wheel=wheel, instance_type='ml.g5.12xlarge',
                              instance_count=2, spot=True, max_runtime_s=7200, job_name='medreason-lora-50-1')
        spec = {'config': {'max_steps': 2}, 'train_data': str(root / 'input/data/train/mixed.jsonl'),
                'eval_data': str(root / 'input/data/validation/heldout.jsonl')}
        assert [u for _, u in stage_plan(spec, rt.s3_prefix, wheel)] == [
            's3://forge-bucket/medreason/lora-50/data/mixed.jsonl', 's3://forge-bucket/medreason/lora-50/data/heldout.jsonl',
            f's3://forge-bucket/medreason/lora-50/code/{wheel.name}']
        job = rt.submit(spec)
        d = job.describe()
        assert d['AlgorithmSpecification']['TrainingImage'] == '763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker'
        assert d['ResourceConfig']['InstanceCount'] == 2 and d['EnableManagedSpotTraining'] is True
        assert d['StoppingCondition'] == {'MaxRuntimeInSeconds': 7200, 'MaxWaitTimeInSeconds': 14400}
        assert {t['Key']: t['Value'] for t in boto3.client('sagemaker').list_tags(ResourceArn=d['TrainingJobArn'])['Tags']} == \
               {'forge-nb:project': 'medreason', 'forge-nb:run': 'lora-50'}
        assert s3.head_object(Bucket='forge-bucket', Key=f'medreason/lora-50/code/{wheel.name}')['ContentLength'] == wheel.stat().st_size
        # what SageMaker does when the container exits 0: tar /opt/ml/model to <output>/<job>/output/model.tar.gz
        assert job.model_path == 's3://forge-bucket/medreason/lora-50/output/medreason-lora-50-1/output/model.tar.gz'
        tgz = tmp_path / 'model.tar.gz'
        with tarfile.open(tgz, 'w:gz') as t:
            for p in (root / 'model').iterdir(): t.add(p, arcname=p.name)
        s3.upload_file(str(tgz), 'forge-bucket', 'medreason/lora-50/output/medreason-lora-50-1/output/model.tar.gz')
        res = job.result()
        got = job.download_model(tmp_path / 'model')
    assert res.status == 'completed' and res.checkpoint_path == 's3://forge-bucket/medreason/lora-50/output/medreason-lora-50-1/checkpoints'
    assert (got / 'adapter_config.json').exists() and json.loads((got / 'forge_nb.json').read_text())['kind'] == 'adapter'
    from peft import PeftConfig
    assert PeftConfig.from_pretrained(str(got)).r == 4                                    # a loadable adapter
