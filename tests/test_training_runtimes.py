"Runtimes: SageMaker request building + submit against moto, HyperPod manifests, hyperparameters round trip, subprocess handle."
import json, os
from pathlib import Path
import pytest, yaml
from forge_nb.training.launch import TrainConfig, train, TrainJob, main_train, _demo_records
from forge_nb.core.records import write_records
from forge_nb.training.runtimes import (sagemaker_training_request, submit_sagemaker, SageMakerTrainingJob, hyperparameters,
                               hyperpod_job_manifest, manifests_yaml, command)

ROLE = 'arn:aws:iam::123456789012:role/SageMakerRole'
IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/forge-nb:latest'

@pytest.fixture
def aws(monkeypatch):
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_SESSION_TOKEN='testing',
                     AWS_DEFAULT_REGION='us-east-1').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False)
    from moto import mock_aws
    with mock_aws(): yield

def test_request_validation():
    cfg = TrainConfig(lr=1e-4, max_steps=100)
    kw = dict(role_arn=ROLE, image_uri=IMAGE, output_s3='s3://b/out')
    with pytest.raises(ValueError, match='train_s3'): sagemaker_training_request(cfg, train_s3='s3://b/prefix/', **kw)
    with pytest.raises(ValueError, match='instance_type'): sagemaker_training_request(cfg, train_s3='s3://b/t.jsonl', instance_type='ml.x.huge', **kw)
    with pytest.raises(ValueError, match='instance_count'): sagemaker_training_request(cfg, train_s3='s3://b/t.jsonl', instance_count=2, **kw)
    with pytest.raises(ValueError, match='role_arn'): sagemaker_training_request(cfg, train_s3='s3://b/t.jsonl', **{**kw, 'role_arn': 'x'})
    r = sagemaker_training_request(cfg, train_s3='s3://b/t.jsonl', eval_s3='s3://b/v.jsonl', instance_type='ml.g5.2xlarge', **kw)
    assert r['AlgorithmSpecification']['ContainerEntrypoint'] == ['python', '-m', 'forge_nb.cli']
    assert [c['ChannelName'] for c in r['InputDataConfig']] == ['train', 'validation']
    assert '/opt/ml/input/data/validation/v.jsonl' in r['AlgorithmSpecification']['ContainerArguments']

def test_hyperparameters_round_trip_through_main_train(tmp_path, capsys):
    "SageMaker hands the container string hyperparameters; `forge-nb train --config` parses them back to the same config."
    cfg = TrainConfig(lr=3e-4, max_steps=7, lora_r=4, target_modules=['q_proj', 'v_proj'], packing=False, warmup_steps=2)
    hp = hyperparameters(cfg)
    assert all(isinstance(v, str) for v in hp.values()) and hp['lr'] == '0.0003' and 'output_dir' not in hp
    (tmp_path / 'hyperparameters.json').write_text(json.dumps(hp))
    data = write_records(_demo_records(16), tmp_path / 'train.jsonl')
    assert main_train(['--config', str(tmp_path / 'hyperparameters.json'), '--train-data', str(data), '--dry-run']) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r['lr'], r['max_steps'], r['lora_r'], r['target_modules'], r['packing'], r['warmup_steps']) == \
           (3e-4, 7, 4, ['q_proj', 'v_proj'], False, 2)

def test_submit_to_moto_sagemaker(aws, tmp_path):
    import boto3
    from forge_nb.core.storage import upload_path
    s3 = boto3.client('s3'); s3.create_bucket(Bucket='forge-bucket')
    data = write_records(_demo_records(16), tmp_path / 'mixed.jsonl')
    uri = upload_path(data, 's3://forge-bucket/data/mixed.jsonl')
    assert uri.endswith('mixed.jsonl') and s3.head_object(Bucket='forge-bucket', Key='data/mixed.jsonl')['ContentLength'] > 0
    req = sagemaker_training_request(TrainConfig(lr=1e-4, max_steps=10), train_s3=uri, role_arn=ROLE, image_uri=IMAGE,
                                     output_s3='s3://forge-bucket/out', instance_type='ml.g5.12xlarge', job_name='forge-test-1',
                                     mlflow_uri='arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-x')
    job = submit_sagemaker(req)
    d = job.describe()
    assert d['TrainingJobName'] == 'forge-test-1' and d['HyperParameters']['lr'] == '0.0001'
    assert d['AlgorithmSpecification']['TrainingImage'] == IMAGE
    assert d['ResourceConfig']['InstanceType'] == 'ml.g5.12xlarge'
    assert job.status() == 'completed'                 # moto jobs complete at once
    assert job.wait(timeout=5, poll=0.1) is job
    names = [j['TrainingJobName'] for j in boto3.client('sagemaker').list_training_jobs()['TrainingJobSummaries']]
    assert 'forge-test-1' in names
    j2 = SageMakerTrainingJob.load(job.dump(tmp_path / 'sm.json'))
    assert j2.name == 'forge-test-1' and j2.status() == 'completed'
    assert job.checkpoint_s3 == 's3://forge-bucket/out/forge-test-1/checkpoints'
    # logs come from CloudWatch: the job's stream under /aws/sagemaker/TrainingJobs
    cw = boto3.client('logs'); g = '/aws/sagemaker/TrainingJobs'
    cw.create_log_group(logGroupName=g); cw.create_log_stream(logGroupName=g, logStreamName='forge-test-1/algo-1-1')
    cw.put_log_events(logGroupName=g, logStreamName='forge-test-1/algo-1-1',
                      logEvents=[{'timestamp': int(__import__('time').time() * 1000) + i, 'message': f'step {i} loss {3 - i * .1:.2f}'} for i in range(3)])
    assert job.logs() == ['step 0 loss 3.00', 'step 1 loss 2.90', 'step 2 loss 2.80']

def test_hyperpod_manifests():
    ms = hyperpod_job_manifest(TrainConfig(method='full', lr=1e-5), job_name='forge-sft', image_uri=IMAGE, nodes=2, gpus_per_node=8,
                               train_data='/fsx/d/mixed.jsonl', output_dir='/fsx/runs/x', mlflow_uri='http://mlflow:5000')
    docs = list(yaml.safe_load_all(manifests_yaml(ms)))
    assert [d['kind'] for d in docs] == ['ConfigMap', 'PyTorchJob']
    spec = json.loads(docs[0]['data']['job.json'])
    assert spec['config']['method'] == 'full' and spec['config']['output_dir'] == '/fsx/runs/x' and spec['train_data'] == '/fsx/d/mixed.jsonl'
    TrainConfig.from_dict(spec['config'])               # the spec the pods read is a valid config
    w = docs[1]['spec']['pytorchReplicaSpecs']['Worker']
    c = w['template']['spec']['containers'][0]
    assert w['replicas'] == 2 and c['resources']['limits']['nvidia.com/gpu'] == 8
    assert c['command'][:3] == ['torchrun', '--nnodes=2', '--nproc_per_node=8'] and '/etc/forge/job.json' in c['command']
    with pytest.raises(ValueError, match='shared volume'):
        hyperpod_job_manifest(TrainConfig(), job_name='x', image_uri=IMAGE, train_data='/home/a.jsonl', output_dir='/fsx/o')

def test_subprocess_runtime_handle(tmp_path):
    job = train(TrainConfig(max_steps=2, track=False, num_threads=1, max_length=128, output_dir=str(tmp_path / 'sp')),
                _demo_records(16), runtime='subprocess')
    assert job.runtime == 'subprocess' and job.command[-2:] == ['--config', str(tmp_path / 'sp' / 'job.json')]
    assert job.status() in ('starting', 'running', 'completed')
    j2 = TrainJob.load(tmp_path / 'sp')                   # a second handle from the folder alone
    job.wait(timeout=180)
    assert job.status() == j2.status() == 'completed' and job.history().step.tolist() == [1, 2]
    assert Path(job.model_path).name == 'adapter'

def test_failed_subprocess_reports_error(tmp_path):
    bad = [{'messages': [{'role': 'user', 'content': 'only a question'}]}] * 8
    job = train(TrainConfig(max_steps=1, track=False, output_dir=str(tmp_path / 'bad')), bad, runtime='subprocess')
    with pytest.raises(RuntimeError, match=r'train\.jsonl: record \(row 0\): field .messages. has no assistant turn'): job.wait(timeout=120)
    assert job.status() == 'failed'
