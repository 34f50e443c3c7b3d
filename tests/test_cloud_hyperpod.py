"HyperPod: manifests (ConfigMap with the job spec + PyTorchJob), validation, the runtime's plan."
import json
import pytest, yaml
from forge_nb.cloud.hyperpod import hyperpod_job_manifest, manifests_yaml, HyperPodRuntime
from forge_nb.training import TrainConfig

IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/forge-nb:latest'

def test_hyperpod_manifests():
    ms = hyperpod_job_manifest(TrainConfig(method='full', lr=1e-5).to_dict(), job_name='forge-sft', image_uri=IMAGE, nodes=2, gpus_per_node=8,
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
        hyperpod_job_manifest(TrainConfig().to_dict(), job_name='x', image_uri=IMAGE, train_data='/home/a.jsonl', output_dir='/fsx/o')
    # an object with to_dict() is accepted too
    assert hyperpod_job_manifest(TrainConfig(), job_name='y', image_uri=IMAGE, train_data='/fsx/a', output_dir='/fsx/b')[1]['kind'] == 'PyTorchJob'

def test_hyperpod_runtime_plans_and_refuses_to_submit():
    rt = HyperPodRuntime(image_uri=IMAGE, nodes=2, gpus_per_node=4)
    spec = {'config': TrainConfig(method='full').to_dict(), 'train_data': '/fsx/d/m.jsonl', 'output_dir': '/fsx/runs/My_Run'}
    p = rt.plan(spec)
    assert p['manifests'][1]['metadata']['name'] == 'my-run' and rt.world_size == 8
    assert 'kind: PyTorchJob' in p['yaml']
    with pytest.raises(NotImplementedError, match='not implemented yet'): rt.submit(spec)
