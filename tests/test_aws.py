"AWS set-up (plan, apply on moto, Studio discovery from a copy of its metadata, kernel) and clean-up by tags with decoys."
import json
from pathlib import Path
from unittest.mock import patch
import pytest
from forge_nb.cloud.aws import aws_context, setup_plan, apply, project_tags, register_kernel, role_policy, TAG_PROJECT, TAG_RUN
from forge_nb.cloud.cleanup import cleanup
from forge_nb.cloud.hyperpod import HyperPodRuntime
from forge_nb.cloud.k8s_standin import K8sStandIn
from forge_nb.cloud.sagemaker import sagemaker_training_request, submit_sagemaker

FIX = Path(__file__).parents[1] / 'fixtures' / 'aws'
ROLE = 'arn:aws:iam::123456789012:role/forge-exec'
TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': 'sagemaker.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]})

def _over_tls(self, action, resource):
    "moto skips `Bool` conditions (a deny on aws:SecureTransport=false would deny everything); boto3 speaks HTTPS: drop that statement."
    from moto.iam.access_control import IAMPolicy, PermissionResult
    if self.policy is None: return PermissionResult.NEUTRAL
    pol = json.loads(self.policy); pol['Statement'] = [s for s in pol['Statement'] if s.get('Condition', {}).get('Bool') != {'aws:SecureTransport': 'false'}]
    return IAMPolicy(json.dumps(pol)).is_action_permitted(action, resource)

@pytest.fixture
def aws(monkeypatch):
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_SESSION_TOKEN='testing', AWS_DEFAULT_REGION='us-east-1').items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False); monkeypatch.delenv('FORGE_NB_STUDIO_METADATA', raising=False)
    from moto import mock_aws
    from moto.s3.models import FakeBucket
    with mock_aws(), patch.object(FakeBucket, 'get_permission', _over_tls): yield

def test_setup_plan_documents():
    p = setup_plan('bkt', ROLE, 'eu-west-1', 'medreason', 'lora-50', kms_key_id='arn:aws:kms:eu-west-1:123456789012:key/k')
    ops = [s['op'] for s in p.steps]
    assert ops == ['create_bucket', 'put_bucket_encryption', 'put_public_access_block', 'put_bucket_tagging', 'put_bucket_policy',
                   'create_policy', 'attach_role_policy']
    a = {s['op']: s['args'] for s in p.steps}
    assert a['create_bucket']['CreateBucketConfiguration'] == {'LocationConstraint': 'eu-west-1'}
    assert a['put_bucket_encryption']['ServerSideEncryptionConfiguration']['Rules'][0]['ApplyServerSideEncryptionByDefault']['SSEAlgorithm'] == 'aws:kms'
    assert all(a['put_public_access_block']['PublicAccessBlockConfiguration'].values())
    bp = json.loads(a['put_bucket_policy']['Policy'])['Statement']
    assert bp[0]['Effect'] == 'Deny' and bp[0]['Condition'] == {'Bool': {'aws:SecureTransport': 'false'}}
    assert bp[1]['Principal'] == {'AWS': ROLE} and set(bp[1]['Action']) == {'s3:GetObject', 's3:PutObject', 's3:DeleteObject'}
    assert bp[1]['Resource'] == 'arn:aws:s3:::bkt/medreason/lora-50/*' and bp[2]['Condition']['StringLike']['s3:prefix'][0] == 'medreason/lora-50/*'
    rp = json.loads(a['create_policy']['PolicyDocument'])['Statement']
    sids = {s['Sid'] for s in rp}
    assert {'RunPrefixObjects', 'RunPrefixList', 'Logs', 'EcrAuth', 'EcrPull', 'Kms'} <= sids
    assert not any(s['Resource'] == '*' and 's3' in str(s['Action']) for s in rp)          # no S3 right beyond the prefix
    assert {t['Key']: t['Value'] for t in a['create_policy']['Tags']} == {TAG_PROJECT: 'medreason', TAG_RUN: 'lora-50'}
    assert 'Kms' not in {s['Sid'] for s in role_policy('b', 'p/r', 'us-east-1', '1')['Statement']}
    with pytest.raises(ValueError, match='lowercase'): project_tags('Bad Name')

def test_apply_on_moto_is_idempotent_and_merges_the_bucket_policy(aws):
    import boto3
    s3, iam = boto3.client('s3'), boto3.client('iam')
    iam.create_role(RoleName='forge-exec', AssumeRolePolicyDocument=TRUST)
    s3.create_bucket(Bucket='shared')
    s3.put_bucket_policy(Bucket='shared', Policy=json.dumps({'Version': '2012-10-17', 'Statement': [
        {'Sid': 'SomeoneElse', 'Effect': 'Allow', 'Principal': {'AWS': 'arn:aws:iam::123456789012:role/other'}, 'Action': 's3:GetObject', 'Resource': 'arn:aws:s3:::shared/x/*'}]}))
    p = setup_plan('shared', ROLE, 'us-east-1', 'medreason', 'lora-50')
    apply(p, echo=False)
    again = apply(p, echo=False)
    assert {'skipped': 'EntityAlreadyExists'} in again     # (us-east-1 answers 200 to re-creating your own bucket, as S3 does)
    sids = [s['Sid'] for s in json.loads(s3.get_bucket_policy(Bucket='shared')['Policy'])['Statement']]
    assert sids == ['SomeoneElse', 'ForgeNbDenyInsecureTransport', 'ForgeNbRunObjectsMedreasonLora50', 'ForgeNbRunListMedreasonLora50']
    assert s3.get_bucket_encryption(Bucket='shared')['ServerSideEncryptionConfiguration']['Rules'][0]['ApplyServerSideEncryptionByDefault']['SSEAlgorithm'] == 'AES256'
    assert {t['Key']: t['Value'] for t in s3.get_bucket_tagging(Bucket='shared')['TagSet']} == {TAG_PROJECT: 'medreason'}
    att = iam.list_attached_role_policies(RoleName='forge-exec')['AttachedPolicies']
    assert [x['PolicyName'] for x in att] == ['forge-nb-medreason-lora-50']

def test_studio_discovery_from_metadata_and_sts(aws, monkeypatch):
    import boto3
    # JupyterLab space: region from the app's ARN, role from the metadata, bucket = the SDK's default name
    ctx = aws_context(metadata_file=FIX / 'studio-jupyterlab-resource-metadata.json')
    assert (ctx.region, ctx.bucket) == ('us-west-2', f'sagemaker-us-west-2-{ctx.account}')
    assert ctx.role_arn.endswith(':role/service-role/AmazonSageMaker-ExecutionRole-20250101T000000') and ctx.studio['SpaceName'] == 'forge-nb-space'
    # Studio Classic (no role in the file): the role behind the credentials, with its path from IAM
    arn = boto3.client('iam').create_role(RoleName='AmazonSageMaker-ExecutionRole-1', Path='/service-role/', AssumeRolePolicyDocument=TRUST)['Role']['Arn']
    c = boto3.client('sts').assume_role(RoleArn=arn, RoleSessionName='SageMaker')['Credentials']
    s = boto3.session.Session(c['AccessKeyId'], c['SecretAccessKey'], c['SessionToken'], region_name='eu-west-1')
    monkeypatch.setenv('FORGE_NB_STUDIO_METADATA', str(FIX / 'studio-classic-resource-metadata.json'))
    ctx2 = aws_context(session=s)
    assert (ctx2.region, ctx2.role_arn) == ('us-east-2', arn) and ctx2.studio['UserProfileName'] == 'forge-user'
    # explicit values win; outside Studio the session's region is used
    ctx3 = aws_context(region='ap-south-1', role_arn=ROLE, bucket='mine', metadata_file=FIX / 'nope.json', session=s)
    assert (ctx3.region, ctx3.role_arn, ctx3.bucket, ctx3.studio) == ('ap-south-1', ROLE, 'mine', {})
    with pytest.raises(ValueError, match='not a role'): aws_context(metadata_file=FIX / 'nope.json')   # moto's default caller is a user

def test_register_kernel_is_a_dry_run_by_default(tmp_path):
    cmd = register_kernel('forge-x', 'Forge X', python='/env/bin/python')
    assert cmd == ['/env/bin/python', '-m', 'ipykernel', 'install', '--user', '--name', 'forge-x', '--display-name', 'Forge X']

def test_cleanup_by_tags_keeps_decoys(aws):
    import boto3
    s3, iam, sm = boto3.client('s3'), boto3.client('iam'), boto3.client('sagemaker')
    iam.create_role(RoleName='forge-exec', AssumeRolePolicyDocument=TRUST)
    apply(setup_plan('forge-bucket', ROLE, 'us-east-1', 'medreason', 'lora-50'), echo=False)
    apply(setup_plan('forge-bucket', ROLE, 'us-east-1', 'medreason', 'full-75', create_bucket=False), echo=False)   # another run
    for k in ('medreason/lora-50/data/mixed.jsonl', 'medreason/lora-50/output/j/output/model.tar.gz', 'medreason/full-75/data/mixed.jsonl'):
        s3.put_object(Bucket='forge-bucket', Key=k, Body=b'x')
    s3.create_bucket(Bucket='decoy'); s3.put_object(Bucket='decoy', Key='medreason/lora-50/a', Body=b'x')          # untagged bucket
    iam.create_policy(PolicyName='decoy', Path='/forge-nb/', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [
        {'Effect': 'Allow', 'Action': 's3:ListBucket', 'Resource': '*'}]}))                                        # untagged policy
    tags = project_tags('medreason', 'lora-50')
    req = lambda n, t: sagemaker_training_request({}, train_s3='s3://forge-bucket/medreason/lora-50/data/mixed.jsonl', role_arn=ROLE,
                                                   image_uri='i', output_s3='s3://forge-bucket/o', job_name=n, tags=t)
    submit_sagemaker(req('ours', tags)); submit_sagemaker(req('not-ours', None))
    spec = {'config': {}, 'train_data': '/fsx/d.jsonl', 'output_dir': '/fsx/r'}
    with K8sStandIn() as api:
        HyperPodRuntime(image_uri='i', kubeconfig=api.kubeconfig(), job_name='hp-ours', project='medreason', run='lora-50').submit(spec)
        HyperPodRuntime(image_uri='i', kubeconfig=api.kubeconfig(), job_name='hp-other', project='medreason', run='full-75').submit(spec)
        dry = cleanup('medreason/lora-50', kubeconfig=api.kubeconfig())
        kinds = {r.kind: r for r in dry.resources}
        assert set(kinds) == {'s3-prefix', 'bucket-policy', 'training-job', 'iam-policy', 'hyperpod-job'} and not dry.removed
        assert kinds['training-job'].id == 'ours' and kinds['training-job'].action == 'keep'   # completed: a record, nothing to stop
        assert kinds['s3-prefix'].detail == '2 objects' and kinds['hyperpod-job'].id == 'kubeflow/hp-ours'
        assert len(s3.list_objects_v2(Bucket='forge-bucket')['Contents']) == 3                  # the dry run removed nothing
        done = cleanup('medreason/lora-50', dry_run=False, kubeconfig=api.kubeconfig())
        assert done.removed and sorted(n for _, n in api.objects['jobs']) == ['hp-other']
        assert sorted(n for _, n in api.objects['configmaps']) == ['hp-other-spec']
    assert [o['Key'] for o in s3.list_objects_v2(Bucket='forge-bucket')['Contents']] == ['medreason/full-75/data/mixed.jsonl']
    assert [o['Key'] for o in s3.list_objects_v2(Bucket='decoy')['Contents']] == ['medreason/lora-50/a']
    sids = [s['Sid'] for s in json.loads(s3.get_bucket_policy(Bucket='forge-bucket')['Policy'])['Statement']]
    assert sids == ['ForgeNbDenyInsecureTransport', 'ForgeNbRunObjectsMedreasonFull75', 'ForgeNbRunListMedreasonFull75']
    assert sorted(p['PolicyName'] for p in iam.list_policies(Scope='Local')['Policies']) == ['decoy', 'forge-nb-medreason-full-75']
    # the whole project: the bucket goes, the decoy bucket stays
    cleanup('medreason', dry_run=False)
    assert [b['Name'] for b in s3.list_buckets()['Buckets']] == ['decoy']
    assert [p['PolicyName'] for p in iam.list_policies(Scope='Local')['Policies']] == ['decoy']

def test_cleanup_stops_running_jobs_and_deletes_mlflow_apps():
    "moto has neither running training jobs nor MLflow apps: a recording stand-in for the sagemaker client."
    import importlib; cl = importlib.import_module('forge_nb.cloud.cleanup')   # (the package re-exports the function under the module's name)
    calls = []
    class SM:
        def get_paginator(self, op): return type('P', (), {'paginate': lambda s: [{'TrainingJobSummaries': [
            {'TrainingJobName': 'run-1', 'TrainingJobArn': 'arn:j/run-1', 'TrainingJobStatus': 'InProgress'},
            {'TrainingJobName': 'decoy', 'TrainingJobArn': 'arn:j/decoy', 'TrainingJobStatus': 'InProgress'}]}]})()
        def list_tags(self, ResourceArn): return {'Tags': [] if 'decoy' in ResourceArn else [{'Key': TAG_PROJECT, 'Value': 'p'}, {'Key': TAG_RUN, 'Value': 'r'}]}
        def list_mlflow_apps(self): return {'Summaries': [{'Arn': 'arn:app/ours', 'Name': 'ours'}, {'Arn': 'arn:app/decoy', 'Name': 'decoy'}]}
        def stop_training_job(self, **kw): calls.append(('stop', kw))
        def delete_mlflow_app(self, **kw): calls.append(('delete', kw))
    class S:
        def client(self, name, **kw): return SM()
    rs = cl._training_jobs(SM(), 'p', 'r') + cl._mlflow_apps(SM(), 'p', 'r')
    assert [(r.kind, r.id, r.action) for r in rs] == [('training-job', 'run-1', 'stop'), ('mlflow-app', 'arn:app/ours', 'delete')]
    for r in rs: cl._remove(S(), r, (None, None))
    assert calls == [('stop', {'TrainingJobName': 'run-1'}), ('delete', {'Arn': 'arn:app/ours'})]
