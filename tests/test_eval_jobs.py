"""Evaluation as a cluster job: the SageMaker request (checked against botocore's CreateTrainingJob model and accepted by moto),
the HyperPod manifests (the PyTorchJob schema, submitted to the loopback Kubernetes stand-in), the container entrypoint run in a
subprocess on a faithful /opt/ml layout (same metrics as `evaluate` in-process), and `evaluate(..., runtime='sagemaker')`
staging and submitting to moto, its `result()` loading the report from S3."""
import io, json, os, subprocess, sys, tarfile
from pathlib import Path
import pytest
from forge_nb.core.embedded import tiny_model_path
from forge_nb.core.jobs import Job
from forge_nb.cloud.entrypoint import opt_ml_layout
from forge_nb.evaluation.task import TaskResult
from forge_nb.evaluation.suite import EvalReport, evaluate
from forge_nb.evaluation.jobs import (TaskSpec, EvalJobSpec, EvalJob, EvalJobPlan, sagemaker_eval_request, hyperpod_eval_manifests,
                                      submit_eval, load_report, save_report, report_json, REPORT)

ROLE = 'arn:aws:iam::123456789012:role/SageMakerRole'
IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/forge-nb:latest'
QA = [{'messages': [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a}]}
      for q, a in [('What is 2 + 2?', '4'), ('Capital of France?', 'Paris'), ('Opposite of hot?', 'cold')]]
ENV = dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true', TOKENIZERS_PARALLELISM='false',
           OMP_NUM_THREADS='1', PYTHONHASHSEED='0')

# `aws` (moto) is a fixture of conftest.py

def _data(tmp_path) -> Path:
    p = tmp_path / 'held.jsonl'; p.write_text(''.join(json.dumps(r) + '\n' for r in QA)); return p

def _tasks(data):
    return [TaskSpec.of('GeneralBenchmark', 1), TaskSpec.of('DomainQA', str(data), limit=2, max_new_tokens=8)]

def _report() -> EvalReport:
    "A small report made by hand (no model): two models, two tasks, the domain task with several table columns."
    r = lambda m, t, ax, mets, cols=(): TaskResult(t, ax, mets, next(iter(mets)), [{'i': 0, 'ok': True}], 2, 0.5, cols)
    res = {m: {'general': r(m, 'general', 'general', {'acc': a}),
               'domain': r(m, 'domain', 'domain', {'token_f1': f, 'exact_match': e}, ('token_f1', 'exact_match'))}
           for m, a, f, e in [('base', 0.5, 0.25, 0.0), ('tuned', 0.5, 0.75, 0.5)]}
    return EvalReport(res, 'base', specs={'base': 'hub/base', 'tuned': 's3://b/tuned'})

def test_report_file_round_trip(tmp_path):
    rep = _report()
    back = load_report(save_report(rep, tmp_path / 'r.json'))
    assert back.to_dict() == rep.to_dict() and back.table.equals(rep.table) and back.results['tuned']['domain'].details == [{'i': 0, 'ok': True}]
    rep.save(tmp_path / 'plain.json')                       # EvalReport.save's file (no columns) loads too: headline columns
    assert load_report(tmp_path / 'plain.json').metrics('tuned', True) == rep.metrics('tuned', True)

def test_sagemaker_eval_request_is_valid(aws, tmp_path):
    "The request matches botocore's CreateTrainingJob input shape and moto's create_training_job accepts it."
    import boto3
    from botocore.validate import ParamValidator
    spec = EvalJobSpec({'base': 'Qwen/Qwen2.5-0.5B-Instruct', 'tuned': 's3://bkt/train/out/job/output/model.tar.gz'},
                       [TaskSpec.of('GeneralBenchmark', 20), TaskSpec.of('DomainQA', 's3://bkt/data/test.jsonl', limit=50)],
                       output='s3://bkt/eval-1', tracking_uri='arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/x',
                       image_uri=IMAGE, instance_type='ml.g5.xlarge')
    req = sagemaker_eval_request(spec, role_arn=ROLE, job_name='forge-eval-1', tags={'team': 'ml'})
    sm = boto3.client('sagemaker')
    shape = sm.meta.service_model.operation_model('CreateTrainingJob').input_shape
    errs = ParamValidator().validate(req, shape)
    assert not errs.has_errors(), errs.generate_report()
    assert req['AlgorithmSpecification']['ContainerEntrypoint'] == ['python', '-m', 'forge_nb.evaluation.jobs']
    assert [c['ChannelName'] for c in req['InputDataConfig']] == ['spec']
    assert req['InputDataConfig'][0]['DataSource']['S3DataSource']['S3Uri'] == 's3://bkt/eval-1/spec.json'
    assert req['ResourceConfig']['InstanceCount'] == 1 and req['ResourceConfig']['InstanceType'] == 'ml.g5.xlarge'
    assert req['Environment']['MLFLOW_TRACKING_URI'] == spec.tracking_uri and req['OutputDataConfig']['S3OutputPath'] == 's3://bkt/eval-1/sagemaker/'
    sm.create_training_job(**req)
    d = sm.describe_training_job(TrainingJobName='forge-eval-1')
    assert d['AlgorithmSpecification']['TrainingImage'] == IMAGE and d['InputDataConfig'][0]['ChannelName'] == 'spec'
    # with a staged wheel the command installs it first, then runs the evaluation entrypoint
    req = sagemaker_eval_request(spec, role_arn=ROLE, job_name='forge-eval-2', code_s3='s3://bkt/code/forge_nb-0.1-py3-none-any.whl')
    assert req['AlgorithmSpecification']['ContainerEntrypoint'][2].endswith('&& exec python -m forge_nb.evaluation.jobs')
    assert [c['ChannelName'] for c in req['InputDataConfig']] == ['spec', 'code']
    assert not ParamValidator().validate(req, shape).has_errors()
    with pytest.raises(ValueError, match='channels'):
        from forge_nb.cloud.sagemaker import sagemaker_training_request
        sagemaker_training_request({}, train_s3=None, channels={'train': 's3://b/x.json'}, role_arn=ROLE, image_uri=IMAGE, output_s3='s3://b/o')
    with pytest.raises(ValueError, match='train_s3'):
        sagemaker_training_request({}, train_s3=None, role_arn=ROLE, image_uri=IMAGE, output_s3='s3://b/o')

def test_hyperpod_eval_manifests_and_standin(tmp_path):
    "One node, one GPU, the eval entrypoint; the spec travels in the ConfigMap; the stand-in (schema-enforcing) accepts the job."
    import yaml
    from forge_nb.cloud.hyperpod import validate_pytorchjob, manifests_yaml
    from forge_nb.cloud.k8s_standin import K8sStandIn
    spec = EvalJobSpec({'base': 'Qwen/Qwen2.5-0.5B-Instruct', 'tuned': '/fsx/runs/lora-50/adapter'}, [TaskSpec.of('GeneralBenchmark', 20)],
                       output='s3://bkt/eval-hp', image_uri=IMAGE, instance_type='ml.p5.48xlarge')
    cm, job = hyperpod_eval_manifests(spec, job_name='forge-eval-hp')
    validate_pytorchjob(job)
    docs = list(yaml.safe_load_all(manifests_yaml([cm, job])))
    assert [d['kind'] for d in docs] == ['ConfigMap', 'PyTorchJob']
    assert EvalJobSpec.from_dict(json.loads(docs[0]['data']['job.json'])) == spec
    w = job['spec']['pytorchReplicaSpecs']['Worker']; c = w['template']['spec']['containers'][0]
    assert w['replicas'] == 1 and job['spec']['elasticPolicy']['maxReplicas'] == 1 and job['spec']['nprocPerNode'] == '1'
    assert c['command'] == ['python', '-m', 'forge_nb.evaluation.jobs', '--spec', '/etc/forge/job.json']
    assert c['resources']['limits']['nvidia.com/gpu'] == 1 and {'name': 'spec', 'mountPath': '/etc/forge'} in c['volumeMounts']
    # the training manifests are unchanged by the new arguments
    from forge_nb.cloud.hyperpod import hyperpod_job_manifest
    t = hyperpod_job_manifest({}, job_name='t', image_uri=IMAGE, train_data='/fsx/a.jsonl', output_dir='/fsx/o')[1]
    assert t['spec']['pytorchReplicaSpecs']['Worker']['template']['spec']['containers'][0]['command'][0] == 'torchrun'
    with pytest.raises(ValueError, match='command'): hyperpod_job_manifest({}, job_name='t', image_uri=IMAGE, command='python x', job_spec={})
    # submitted through evaluate() to the stand-in; the report on the "shared volume" (a tmp folder) comes back as the EvalReport
    out = tmp_path / 'fsx-eval'
    with K8sStandIn() as api:
        ej = evaluate({'base': 'Qwen/Qwen2.5-0.5B-Instruct'}, [TaskSpec.of('GeneralBenchmark', 1)], runtime='hyperpod', output=str(out),
                      kubeconfig=api.kubeconfig(), job_name='forge-eval-st', image_uri=IMAGE, log=False)
        assert isinstance(ej, EvalJob) and ej.status() == 'pending'
        cm = api.objects['configmaps'][('kubeflow', 'forge-eval-st-spec')]
        assert EvalJobSpec.from_dict(json.loads(cm['data']['job.json'])).report_uri == f'{out}/{REPORT}'
        with pytest.raises(FileNotFoundError, match='no report'): ej.result(wait=False)
        save_report(_report(), out / REPORT)
        api.set_state('forge-eval-st', 'Succeeded')
        assert ej.result(timeout=5, poll=0.01).to_dict() == _report().to_dict()
        ej2 = EvalJob.load(ej.dump(tmp_path / 'ej.json'))
        assert ej2.name == 'forge-eval-st' and ej2.status() == 'completed' and ej2.result(wait=False).baseline == 'base'

def test_entrypoint_on_opt_ml_layout_matches_in_process(tmp_path):
    "The container entrypoint, run as `python -m forge_nb.evaluation.jobs` with the SageMaker contract, reports what evaluate() does here."
    import torch
    data, model = _data(tmp_path), str(tiny_model_path())
    spec = EvalJobSpec({'tiny': model}, _tasks(data), output=str(tmp_path / 'out'), device='cpu')
    root = opt_ml_layout(tmp_path / 'opt_ml', {}, {'spec': spec.save(tmp_path / 'spec.json')})
    env = {**{k: v for k, v in os.environ.items() if k != 'MLFLOW_TRACKING_URI'}, **ENV, 'FORGE_NB_OPT_ML': str(root),
           'SM_CHANNEL_SPEC': str(root / 'input' / 'data' / 'spec'), 'SM_MODEL_DIR': str(root / 'model'),
           'SM_OUTPUT_DATA_DIR': str(root / 'output' / 'data'), 'SM_NUM_GPUS': '0'}
    p = subprocess.run([sys.executable, '-m', 'forge_nb.evaluation.jobs'], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not (root / 'output' / 'failure').exists() and not (tmp_path / 'mlflow.db').exists()   # no tracking URI: nothing logged
    job = load_report(root / 'model' / REPORT)
    assert load_report(spec.report_uri).to_dict() == job.to_dict()
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: here = evaluate({'tiny': model}, [t.build() for t in _tasks(data)], log=False, verbose=False, device='cpu')
    finally: torch.set_num_threads(n)
    assert job.models == here.models and job.baseline == here.baseline and list(job.table.columns) == list(here.table.columns)
    for m in here.models: assert job.metrics(m, True) == pytest.approx(here.metrics(m, True), rel=1e-6, abs=1e-9)
    assert {t: r.n for t, r in job.results['tiny'].items()} == {'general': 6, 'domain': 2}
    assert [d.get('prediction') for d in job.results['tiny']['domain'].details] == [d.get('prediction') for d in here.results['tiny']['domain'].details]

def test_evaluate_runtime_sagemaker_against_moto(aws, tmp_path):
    "evaluate(runtime='sagemaker') stages the model, the data and the spec, creates the job; result() loads the report from S3."
    import boto3
    s3 = boto3.client('s3'); s3.create_bucket(Bucket='forge-b')
    data, out = _data(tmp_path), 's3://forge-b/proj/eval-1'
    models = {'base': str(tiny_model_path()), 'tuned': 's3://forge-b/proj/run-1/output/job/output/model.tar.gz'}
    plan = evaluate(models, _tasks(data), runtime='sagemaker', output=out, role_arn=ROLE, image_uri=IMAGE, job_name='forge-eval-moto', dry_run=True)
    assert isinstance(plan, EvalJobPlan) and plan.plan['TrainingJobName'] == 'forge-eval-moto'
    assert 'Contents' not in s3.list_objects_v2(Bucket='forge-b')              # a dry run sends nothing
    with pytest.raises(ValueError, match='dry_run'): evaluate(models, _tasks(data), dry_run=True)
    with pytest.raises(TypeError, match='cannot travel'): evaluate(models, [t.build() for t in _tasks(data)], runtime='sagemaker', output=out, role_arn=ROLE)
    ej = evaluate(models, _tasks(data), runtime='sagemaker', output=out, role_arn=ROLE, image_uri=IMAGE, job_name='forge-eval-moto',
                  tracking_uri='http://mlflow.internal:5000')
    assert isinstance(ej, EvalJob) and ej.name == 'forge-eval-moto' and ej.report_uri == f'{out}/report.json'
    keys = {o['Key'] for o in s3.list_objects_v2(Bucket='forge-b')['Contents']}
    assert {'proj/eval-1/spec.json', 'proj/eval-1/inputs/data/1-held.jsonl', 'proj/eval-1/inputs/models/0-tiny-chat/model.safetensors'} <= keys
    staged = EvalJobSpec.from_dict(json.loads(s3.get_object(Bucket='forge-b', Key='proj/eval-1/spec.json')['Body'].read()))
    assert staged.models == {'base': f'{out}/inputs/models/0-tiny-chat', 'tuned': models['tuned']} and staged.tracking_uri == 'http://mlflow.internal:5000'
    assert staged.tasks[1]['args'] == [f'{out}/inputs/data/1-held.jsonl'] and TaskSpec.from_dict(staged.tasks[1]).kwargs == {'limit': 2, 'max_new_tokens': 8}
    d = boto3.client('sagemaker').describe_training_job(TrainingJobName='forge-eval-moto')
    assert d['InputDataConfig'][0]['DataSource']['S3DataSource']['S3Uri'] == f'{out}/spec.json'
    assert d['AlgorithmSpecification']['ContainerEntrypoint'] == ['python', '-m', 'forge_nb.evaluation.jobs']
    assert ej.status() == 'completed'                                          # moto jobs complete at once
    with pytest.raises(FileNotFoundError, match='no report'): ej.result(timeout=5, poll=0.01)
    # the job finished: its report at the output location
    rep = _report()
    s3.put_object(Bucket='forge-b', Key='proj/eval-1/report.json', Body=json.dumps(report_json(rep)).encode())
    got = ej.result(timeout=5, poll=0.01)
    assert isinstance(got, EvalReport) and got.to_dict() == rep.to_dict() and got.table.equals(rep.table)
    ej2 = EvalJob.load(ej.dump(tmp_path / 'ej.json'))
    assert type(ej2.job).__name__ == 'SageMakerTrainingJob' and ej2.result(wait=False).delta('tuned', 'domain/token_f1') == pytest.approx(0.5)
    # without the direct upload, the report inside model.tar.gz (what SageMaker uploads from SM_MODEL_DIR) is the fallback
    s3.delete_object(Bucket='forge-b', Key='proj/eval-1/report.json')
    mp = ej.job.model_path
    assert mp == f'{out}/sagemaker/forge-eval-moto/output/model.tar.gz'
    buf, raw = io.BytesIO(), json.dumps(report_json(rep)).encode()
    with tarfile.open(fileobj=buf, mode='w:gz') as t:
        ti = tarfile.TarInfo(REPORT); ti.size = len(raw); t.addfile(ti, io.BytesIO(raw))
    s3.put_object(Bucket='forge-b', Key=mp.split('/', 3)[3], Body=buf.getvalue())
    assert ej.result(wait=False).to_dict() == rep.to_dict()
