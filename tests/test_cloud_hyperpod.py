"HyperPod: manifests validated against the PyTorchJob schema, kubeconfig like connect-cluster, and submit/status/logs/delete through the kubernetes client against the loopback stand-in."
import json
import pytest, yaml
from forge_nb.core.jobs import Job, STATUSES
from forge_nb.cloud.hyperpod import (hyperpod_job_manifest, manifests_yaml, validate_pytorchjob, HyperPodRuntime, HyperPodJob,
                                     connect_cluster, kubeconfig_for)
from forge_nb.cloud.k8s_standin import K8sStandIn
from forge_nb.training import TrainConfig

IMAGE = '763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker'
SPEC = {'config': TrainConfig(method='full', lr=1e-5).to_dict(), 'train_data': '/fsx/d/mixed.jsonl', 'output_dir': '/fsx/runs/My_Run'}

def test_hyperpod_manifests():
    ms = hyperpod_job_manifest(TrainConfig(method='full', lr=1e-5).to_dict(), job_name='forge-sft', image_uri=IMAGE, nodes=4, min_nodes=2,
                               train_data='s3://bkt/d/mixed.jsonl', eval_data='/fsx/d/eval.jsonl', output_dir='/fsx/runs/x',
                               mlflow_uri='arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-x', max_runtime_s=86400, project='p', run='r')
    docs = list(yaml.safe_load_all(manifests_yaml(ms)))
    assert [d['kind'] for d in docs] == ['ConfigMap', 'PyTorchJob'] and all(d['metadata']['namespace'] == 'kubeflow' for d in docs)
    spec = json.loads(docs[0]['data']['job.json'])
    assert spec['config']['method'] == 'full' and spec['config']['output_dir'] == '/fsx/runs/x' and spec['train_data'] == 's3://bkt/d/mixed.jsonl'
    assert spec['config']['track'] is True and spec['eval_data'] == '/fsx/d/eval.jsonl'
    TrainConfig.from_dict(spec['config'])               # the spec the pods read is a valid config
    job = docs[1]; w = job['spec']['pytorchReplicaSpecs']['Worker']; c = w['template']['spec']['containers'][0]
    assert w['replicas'] == 4 and c['resources']['limits'] == {'nvidia.com/gpu': 8, 'vpc.amazonaws.com/efa': 32}
    assert job['spec']['elasticPolicy'] == {'rdzvBackend': 'c10d', 'minReplicas': 2, 'maxReplicas': 4, 'maxRestarts': 3}
    assert job['spec']['runPolicy']['activeDeadlineSeconds'] == 86400 and job['metadata']['labels'] == {'forge-nb/project': 'p', 'forge-nb/run': 'r'}
    assert c['command'][:3] == ['torchrun', '--nnodes=2:4', '--nproc_per_node=8'] and '--rdzv_endpoint=forge-sft-worker-0:29400' in c['command']
    assert c['command'][-4:] == ['train', '--config', '/etc/forge/job.json', '--resume'] and w['template']['spec']['nodeSelector'] == {
        'node.kubernetes.io/instance-type': 'ml.p5.48xlarge'}
    with pytest.raises(ValueError, match='shared volume'):
        hyperpod_job_manifest({}, job_name='x', image_uri=IMAGE, train_data='/home/a.jsonl', output_dir='/fsx/o')
    with pytest.raises(ValueError, match='min_nodes'):
        hyperpod_job_manifest({}, job_name='x', image_uri=IMAGE, train_data='/fsx/a', output_dir='/fsx/o', nodes=2, min_nodes=3)
    assert hyperpod_job_manifest(TrainConfig(), job_name='y', image_uri=IMAGE, train_data='/fsx/a', output_dir='/fsx/b')[1]['kind'] == 'PyTorchJob'

def test_schema_rejects_what_the_crd_rejects():
    good = hyperpod_job_manifest({}, job_name='ok', image_uri=IMAGE, train_data='/fsx/a', output_dir='/fsx/b')[1]
    validate_pytorchjob(good)
    bad = lambda f: (lambda m: (f(m), m)[1])(json.loads(json.dumps(good)))
    for mutate, where in [(lambda m: m['spec'].pop('pytorchReplicaSpecs'), 'pytorchReplicaSpecs'),
                          (lambda m: m['spec']['pytorchReplicaSpecs'].update(Chief={}), 'pytorchReplicaSpecs'),
                          (lambda m: m['spec']['pytorchReplicaSpecs']['Worker'].update(restartPolicy='Sometimes'), 'restartPolicy'),
                          (lambda m: m['spec']['pytorchReplicaSpecs']['Worker'].update(replicas='4'), 'replicas'),
                          (lambda m: m['spec'].update(nprocPerNode=8), 'nprocPerNode'),
                          (lambda m: m['spec']['runPolicy'].update(cleanPodPolicy='Sometimes'), 'cleanPodPolicy'),
                          (lambda m: m['spec']['pytorchReplicaSpecs']['Worker']['template']['spec'].update(containers=[]), 'containers'),
                          (lambda m: m.update(apiVersion='kubeflow.org/v2'), 'apiVersion')]:
        with pytest.raises(ValueError, match=where): validate_pytorchjob(bad(mutate))

def test_submit_status_logs_delete_against_the_standin(tmp_path):
    with K8sStandIn() as api:
        rt = HyperPodRuntime(image_uri=IMAGE, kubeconfig=api.kubeconfig(), nodes=2, instance_type='ml.g5.12xlarge', project='p', run='r')
        assert rt.world_size == 8
        job = rt.submit(SPEC)
        assert isinstance(job, Job) and job.kind == 'hyperpod' and job.name == 'my-run' and job.status() == 'pending'
        assert sorted(n for _, n in api.objects['pods']) == ['my-run-worker-0', 'my-run-worker-1']
        assert ('POST', '/api/v1/namespaces/kubeflow/configmaps') in api.requests
        api.set_state('my-run', 'Running', [f'step {i}' for i in range(1, 101)])
        assert job.status() == 'running' and job.logs(tail=3) == ['step 98', 'step 99', 'step 100'] and len(job.logs(tail=None)) == 100
        api.set_state('my-run', 'Restarting'); assert job.status() == 'running'
        j2 = Job.load(job.dump(tmp_path / 'hp.json'))
        assert type(j2) is HyperPodJob and j2.status() == 'running'
        api.set_state('my-run', 'Failed')
        with pytest.raises(RuntimeError, match='step 100'): j2.wait(timeout=5, poll=0.01)
        assert j2.result().status == 'failed' and j2.result().model_path is None
        assert rt.jobs(project='p') == ['my-run'] and rt.jobs(project='other') == []
        with pytest.raises(Exception) as e: rt.submit(SPEC)            # the name is taken: 409 from the API
        assert getattr(e.value, 'status', None) == 409
        j2.stop()
        assert j2.status() == 'stopped' and not api.objects['jobs'] and not api.objects['configmaps'] and not api.objects['pods']
        j2.stop()                                                        # deleting twice is fine
        # a completed job's result names the model on the shared volume
        job = HyperPodRuntime(image_uri=IMAGE, kubeconfig=api.kubeconfig(), job_name='lora-1').submit({**SPEC, 'config': {'method': 'lora'}})
        api.set_state('lora-1', 'Succeeded')
        r = job.wait(timeout=5, poll=0.01).result()
        assert (r.status, r.model_path, r.checkpoint_path) == ('completed', '/fsx/runs/My_Run/adapter', '/fsx/runs/My_Run/checkpoints')
        assert r.status in STATUSES

def test_the_standin_enforces_the_schema():
    from kubernetes import client as k8s, config
    with K8sStandIn() as api:
        co = k8s.CustomObjectsApi(config.new_client_from_config_dict(api.kubeconfig()))
        m = hyperpod_job_manifest({}, job_name='x', image_uri=IMAGE, train_data='/fsx/a', output_dir='/fsx/b')[1]
        m['spec']['pytorchReplicaSpecs']['Worker']['restartPolicy'] = 'Sometimes'
        with pytest.raises(k8s.ApiException) as e: co.create_namespaced_custom_object('kubeflow.org', 'v1', 'kubeflow', 'pytorchjobs', m)
        assert e.value.status == 422 and 'restartPolicy' in json.loads(e.value.body)['message']
        m['spec']['pytorchReplicaSpecs']['Worker']['restartPolicy'] = 'OnFailure'
        co.create_namespaced_custom_object('kubeflow.org', 'v1', 'kubeflow', 'pytorchjobs', m, dry_run='All')   # validated, not stored
        assert not api.objects['jobs']

def test_connect_cluster_kubeconfig(tmp_path, monkeypatch):
    import boto3
    from botocore.stub import Stubber
    from moto import mock_aws
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'): monkeypatch.setenv(k, 'testing')
    with mock_aws():
        eks_arn = boto3.client('eks', region_name='us-west-2').create_cluster(name='hp-eks', roleArn='arn:aws:iam::123456789012:role/e',
                                                                              resourcesVpcConfig={})['cluster']['arn']
        sm = boto3.client('sagemaker', region_name='us-west-2'); stub = Stubber(sm)
        for orch in ({'Eks': {'ClusterArn': eks_arn}}, {'Eks': {'ClusterArn': eks_arn}}, {}):
            stub.add_response('describe_cluster', {'ClusterArn': 'arn:aws:sagemaker:us-west-2:123456789012:cluster/c', 'ClusterStatus': 'InService',
                                                   'InstanceGroups': [], **({'Orchestrator': orch} if orch else {})}, {'ClusterName': 'forge-hp'})
        class Sess:
            def client(self, name, **kw): return sm if name == 'sagemaker' else boto3.client(name, **kw)
        with stub:
            dry = connect_cluster('forge-hp', 'us-west-2', path=tmp_path / 'kc.json', session=Sess())
            assert not dry['written'] and not (tmp_path / 'kc.json').exists()
            assert dry['command'] == ['aws', 'eks', 'update-kubeconfig', '--name', 'hp-eks', '--region', 'us-west-2', '--kubeconfig', str(tmp_path / 'kc.json')]
            real = connect_cluster('forge-hp', 'us-west-2', path=tmp_path / 'kc.json', dry_run=False, session=Sess())
            with pytest.raises(ValueError, match='not orchestrated by EKS'): connect_cluster('forge-hp', 'us-west-2', session=Sess())
    kc = json.loads((tmp_path / 'kc.json').read_text())
    assert kc == real['kubeconfig'] and kc['current-context'] == eks_arn
    assert kc['contexts'][0]['context']['namespace'] == 'kubeflow'
    assert kc['users'][0]['user']['exec']['args'] == ['--region', 'us-west-2', 'eks', 'get-token', '--cluster-name', 'hp-eks', '--output', 'json']
    assert kc['clusters'][0]['cluster']['server'].startswith('https://')
    from kubernetes import config
    assert config.new_client_from_config_dict(kubeconfig_for(eks_arn, 'https://x.example', 'Y2E=', 'us-west-2')).configuration.host == 'https://x.example'

def test_hyperpod_preview_for_the_walkthrough():
    rt = HyperPodRuntime(image_uri=IMAGE, nodes=4, instance_type='ml.p5.48xlarge')
    p = rt.preview({**SPEC, 'config': {'method': 'lora', 'global_batch_size': 32}}, tokens=2 * 23_000 * 1024, tokens_per_s_per_gpu=2500)
    assert (p.runtime, p.nodes, p.gpus_per_node, p.gpus) == ('hyperpod', 4, 8, 32)
    assert abs(p.estimate['cost_usd'] - p.estimate['hours'] * 4 * 113.07) < 1 and 'torchrun --nnodes=4 --nproc_per_node=8' in p.summary()
