"SageMaker: request planning and validation, hyperparameters round trip through `forge-nb train`'s run_spec, submit to moto, the job protocol, CloudWatch logs read from the end, the runtime."
import json, time
import pytest
from forge_nb.core.jobs import Job, STATUSES
from forge_nb.core.records import write_records
from forge_nb.cloud.sagemaker import (sagemaker_training_request, submit_sagemaker, SageMakerTrainingJob, SageMakerRuntime,
                                      hyperparameters, tail_events, LOG_GROUP)
from forge_nb.training import TrainConfig, demo_records

ROLE = 'arn:aws:iam::123456789012:role/SageMakerRole'
IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/forge-nb:latest'

# `aws` (moto) is a fixture of conftest.py

def test_cloud_does_not_import_training():
    import subprocess, sys
    code = "import sys, forge_nb.cloud; assert not [m for m in sys.modules if m.startswith('forge_nb.training')], 'cloud imported training'"
    subprocess.run([sys.executable, '-c', code], check=True)

def test_request_validation():
    cfg = TrainConfig(lr=1e-4, max_steps=100).to_dict()
    kw = dict(role_arn=ROLE, image_uri=IMAGE, output_s3='s3://bkt/out')
    with pytest.raises(ValueError, match='train_s3'): sagemaker_training_request(cfg, train_s3='s3://bkt/prefix/', **kw)
    with pytest.raises(ValueError, match='instance_type'): sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', instance_type='ml.x.huge', **kw)
    with pytest.raises(ValueError, match='instance_count'): sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', instance_count=0, **kw)
    with pytest.raises(ValueError, match='role_arn'): sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', **{**kw, 'role_arn': 'x'})
    with pytest.raises(ValueError, match='code_s3'): sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', code_s3='s3://bkt/x.tar.gz', **kw)
    with pytest.raises(ValueError, match='VPC'): sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', security_group_ids=['sg'], **kw)
    r = sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', eval_s3='s3://bkt/v.jsonl', instance_type='ml.g5.2xlarge', **kw)
    assert r['AlgorithmSpecification']['ContainerEntrypoint'] == ['python', '-m', 'forge_nb.cloud.entrypoint']
    assert [c['ChannelName'] for c in r['InputDataConfig']] == ['train', 'validation']
    assert r['EnableManagedSpotTraining'] is False and 'MaxWaitTimeInSeconds' not in r['StoppingCondition'] and 'VpcConfig' not in r
    r = sagemaker_training_request(cfg, train_s3='s3://bkt/t.jsonl', code_s3='s3://bkt/code/forge_nb-1-py3-none-any.whl', instance_type='ml.p5.48xlarge',
                                   instance_count=4, spot=True, max_runtime_s=3600, max_wait_s=7200, subnets=['subnet-a'], security_group_ids=['sg-a'],
                                   kms_key_id='arn:aws:kms:us-east-1:123456789012:key/k', encrypt_inter_node=True, **kw)
    assert r['AlgorithmSpecification']['ContainerEntrypoint'][:2] == ['/bin/bash', '-c']
    assert 'pip install --no-cache-dir --quiet /opt/ml/input/data/code/forge_nb-1-py3-none-any.whl && exec python -m forge_nb.cloud.entrypoint' in \
           r['AlgorithmSpecification']['ContainerEntrypoint'][2]
    assert [c['ChannelName'] for c in r['InputDataConfig']] == ['train', 'code'] and r['ResourceConfig']['InstanceCount'] == 4
    assert r['StoppingCondition'] == {'MaxRuntimeInSeconds': 3600, 'MaxWaitTimeInSeconds': 7200} and r['EnableManagedSpotTraining']
    assert r['VpcConfig'] == {'Subnets': ['subnet-a'], 'SecurityGroupIds': ['sg-a']} and r['EnableInterContainerTrafficEncryption']
    assert r['OutputDataConfig']['KmsKeyId'] == r['ResourceConfig']['VolumeKmsKeyId'] == 'arn:aws:kms:us-east-1:123456789012:key/k'

def test_image_table_and_preview():
    from forge_nb.cloud.plan import training_image
    assert training_image('eu-central-2') == '380420809688.dkr.ecr.eu-central-2.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker'
    assert training_image('cn-north-1').endswith('.amazonaws.com.cn/pytorch:2.13-cu133-amzn2023-sagemaker')
    with pytest.raises(ValueError, match='py313'): training_image('us-east-1', version='2.10', python='py312')
    rt = SageMakerRuntime(role_arn=ROLE, s3_prefix='s3://bkt/medreason/lora-50', instance_type='ml.p5.48xlarge', instance_count=4, job_name='j')
    p = rt.preview({'config': {}, 'train_data': '/local/mixed.jsonl'}, tokens=3.6e9, tokens_per_s_per_gpu=1000, startup_h=0)
    assert (p.nodes, p.gpus, p.estimate['hours'], p.estimate['cost_usd']) == (4, 32, 31.25, round(31.25 * 4 * 113.07, 2))
    assert p.command[:5] == ['torchrun', '--nnodes=4', '--nproc_per_node=8', '--node_rank=0', '--master_addr=algo-1']
    assert p.request['InputDataConfig'][0]['DataSource']['S3DataSource']['S3Uri'] == 's3://bkt/medreason/lora-50/data/mixed.jsonl'
    assert 'cost      $14,133.75 on demand' in p.summary()

@pytest.mark.parametrize('with_defaults', [True, False])
def test_hyperparameters_round_trip_through_run_spec(tmp_path, with_defaults):
    "SageMaker hands the container string hyperparameters; `forge-nb train --config` (run_spec) parses them back to the same config."
    from forge_nb.training.launch import run_spec
    cfg = TrainConfig(lr=3e-4, max_steps=7, lora_r=4, target_modules=['q_proj', 'v_proj'], packing=False, warmup_steps=2, save_total_limit=None)
    hp = hyperparameters(cfg.to_dict(), TrainConfig().to_dict() if with_defaults else None)
    assert all(isinstance(v, str) for v in hp.values()) and hp['lr'] == '0.0003' and 'output_dir' not in hp
    if with_defaults: assert 'method' not in hp and hp['save_total_limit'] == 'null'
    (tmp_path / 'hyperparameters.json').write_text(json.dumps(hp))
    data = write_records(demo_records(16), tmp_path / 'train.jsonl')
    r = run_spec(tmp_path / 'hyperparameters.json', train_data=data, dry_run=True)
    assert (r['lr'], r['max_steps'], r['lora_r'], r['target_modules'], r['packing'], r['warmup_steps']) == \
           (3e-4, 7, 4, ['q_proj', 'v_proj'], False, 2)
    assert TrainConfig.from_dict(hp) == cfg.update(save_total_limit=None if with_defaults else 2)   # without defaults an unset value stays unset
    if with_defaults: assert r['save_total_limit'] is None

def test_submit_to_moto_sagemaker(aws, tmp_path):
    import boto3
    from forge_nb.core.storage import upload_path
    s3 = boto3.client('s3'); s3.create_bucket(Bucket='forge-bucket')
    data = write_records(demo_records(16), tmp_path / 'mixed.jsonl')
    uri = upload_path(data, 's3://forge-bucket/data/mixed.jsonl')
    assert uri.endswith('mixed.jsonl') and s3.head_object(Bucket='forge-bucket', Key='data/mixed.jsonl')['ContentLength'] > 0
    req = sagemaker_training_request(TrainConfig(lr=1e-4, max_steps=10).to_dict(), train_s3=uri, role_arn=ROLE, image_uri=IMAGE,
                                     output_s3='s3://forge-bucket/out', instance_type='ml.g5.12xlarge', job_name='forge-test-1',
                                     mlflow_uri='arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-x')
    job = submit_sagemaker(req)
    assert isinstance(job, Job) and job.kind == 'sagemaker'
    d = job.describe()
    assert d['TrainingJobName'] == 'forge-test-1' and d['HyperParameters']['lr'] == '0.0001'
    assert d['AlgorithmSpecification']['TrainingImage'] == IMAGE
    assert d['ResourceConfig']['InstanceType'] == 'ml.g5.12xlarge'
    assert job.status() == 'completed' and job.status() in STATUSES      # moto jobs complete at once
    assert job.wait(timeout=5, poll=0.1) is job
    names = [j['TrainingJobName'] for j in boto3.client('sagemaker').list_training_jobs()['TrainingJobSummaries']]
    assert 'forge-test-1' in names
    j2 = Job.load(job.dump(tmp_path / 'sm.json'))
    assert type(j2) is SageMakerTrainingJob and j2.name == 'forge-test-1' and j2.status() == 'completed'
    assert SageMakerTrainingJob.load(tmp_path / 'sm.json').name == 'forge-test-1'
    assert job.checkpoint_s3 == 's3://forge-bucket/out/forge-test-1/checkpoints'
    res = job.result()
    assert res.status == 'completed' and res.checkpoint_path == job.checkpoint_s3 and res.model_path == job.model_path
    # logs come from CloudWatch: the job's stream under /aws/sagemaker/TrainingJobs
    assert job.logs() == []                                              # no log group yet
    cw = boto3.client('logs')
    cw.create_log_group(logGroupName=LOG_GROUP); cw.create_log_stream(logGroupName=LOG_GROUP, logStreamName='forge-test-1/algo-1-1')
    cw.create_log_stream(logGroupName=LOG_GROUP, logStreamName='forge-test-10/algo-1-1')   # another job whose name shares the prefix
    cw.put_log_events(logGroupName=LOG_GROUP, logStreamName='forge-test-1/algo-1-1',
                      logEvents=[{'timestamp': int(time.time() * 1000) + i, 'message': f'step {i} loss {3 - i * .1:.2f}'} for i in range(3)])
    cw.put_log_events(logGroupName=LOG_GROUP, logStreamName='forge-test-10/algo-1-1', logEvents=[{'timestamp': int(time.time() * 1000), 'message': 'other'}])
    assert job.logs() == ['step 0 loss 3.00', 'step 1 loss 2.90', 'step 2 loss 2.80']
    assert job.logs(tail=1) == ['step 2 loss 2.80']

def test_logs_read_backwards_from_the_end(aws):
    "A long stream: the tail comes from the end in few calls; all of it pages backwards, bounded."
    import boto3
    cw = boto3.client('logs'); g, s = '/g', 'job/algo-1-1'
    cw.create_log_group(logGroupName=g); cw.create_log_stream(logGroupName=g, logStreamName=s)
    t = int(time.time() * 1000)
    cw.put_log_events(logGroupName=g, logStreamName=s, logEvents=[{'timestamp': t + i, 'message': f'm{i}'} for i in range(250)])
    calls = []
    class Counting:
        def get_log_events(self, **kw): calls.append(kw); return cw.get_log_events(**kw)
    assert [e['message'] for e in tail_events(Counting(), g, s, tail=5)] == [f'm{i}' for i in range(245, 250)]
    assert len(calls) == 1 and calls[0]['startFromHead'] is False
    calls.clear()
    every = tail_events(Counting(), g, s, tail=None, page=100)
    assert [e['message'] for e in every] == [f'm{i}' for i in range(250)] and 3 <= len(calls) <= 4
    calls.clear()
    assert [e['message'] for e in tail_events(Counting(), g, s, tail=None, page=100, max_pages=1)] == [f'm{i}' for i in range(150, 250)]
    assert len(calls) == 1
    assert [e['message'] for e in tail_events(cw, g, s, tail=120, page=100)] == [f'm{i}' for i in range(130, 250)]

def test_runtime_plan_and_submit(aws):
    import boto3
    boto3.client('s3').create_bucket(Bucket='forge-b')
    rt = SageMakerRuntime(role_arn=ROLE, image_uri=IMAGE, s3_prefix='s3://forge-b/proj/run-1', instance_type='ml.g5.2xlarge', job_name='forge-rt')
    spec = {'config': TrainConfig(max_steps=5).to_dict(), 'train_data': 's3://bkt/d/train.jsonl', 'eval_data': None,
            'output_dir': '/runs/x', 'defaults': TrainConfig().to_dict()}
    req = rt.plan(spec)
    assert req['TrainingJobName'] == 'forge-rt' and req['HyperParameters'] == {'max_steps': '5', 'track': 'false'}
    assert req['OutputDataConfig']['S3OutputPath'] == 's3://forge-b/proj/run-1/output/' and {t['Key'] for t in req['Tags']} == {'forge-nb:project', 'forge-nb:run'}
    job = rt.submit(spec)
    assert job.name == 'forge-rt' and job.status() == 'completed'
    with pytest.raises(ValueError, match='s3_prefix'): SageMakerRuntime(role_arn=ROLE, s3_prefix='/local')

def test_train_dispatches_to_a_runtime_object(aws, tmp_path):
    "train() hands its spec to any runtime object (here SageMaker via moto), without the trainer importing the cloud package; local data is staged."
    import boto3
    from forge_nb.training import train
    boto3.client('s3').create_bucket(Bucket='forge-b')
    rt = SageMakerRuntime(role_arn=ROLE, image_uri=IMAGE, s3_prefix='s3://forge-b/proj/run-1', job_name='forge-train-rt')
    data = write_records(demo_records(16), tmp_path / 'mixed.jsonl')
    dr = train(TrainConfig(max_steps=3, output_dir=str(tmp_path / 'r')), data, runtime=rt, dry_run=True)
    assert dr.plan['TrainingJobName'] == 'forge-train-rt' and dr.plan['HyperParameters']['max_steps'] == '3'
    job = train(TrainConfig(max_steps=3, output_dir=str(tmp_path / 'r')), data, runtime=rt)
    assert isinstance(job, SageMakerTrainingJob) and job.status() == 'completed'
    assert boto3.client('s3').head_object(Bucket='forge-b', Key='proj/run-1/data/mixed.jsonl')['ContentLength'] == data.stat().st_size
