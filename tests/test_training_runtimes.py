"Local runtimes: the command, the plan, subprocess handles (status, re-attach, failure report), runtime objects."
import json, os
from pathlib import Path
import pytest
from forge_nb.core.jobs import Job, Runtime
from forge_nb.training import TrainConfig, train, TrainJob, demo_records
from forge_nb.training.runtimes import command, get_runtime, LocalRuntime, SubprocessRuntime, TorchrunRuntime

def test_command_and_plans():
    assert command('/r/job.json')[1:] == ['-m', 'forge_nb.cli', 'train', '--config', '/r/job.json']
    cmd = command('/r/job.json', 'torchrun', nproc=3, port=29500)
    assert cmd[1:5] == ['-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=3'] and '--master_port=29500' in cmd
    assert cmd[-5:] == ['-m', 'forge_nb.cli', 'train', '--config', '/r/job.json']
    spec = {'config': {}, 'train_data': '/d.jsonl', 'output_dir': '/nowhere/run'}
    for rt in (get_runtime('local'), get_runtime('subprocess'), get_runtime('torchrun', nproc=4)):
        assert isinstance(rt, Runtime) and rt.plan(spec)['output_dir'] == '/nowhere/run'
    assert get_runtime('torchrun', nproc=4).plan(spec)['world_size'] == 4
    assert not Path('/nowhere').exists()                                   # planning touches nothing
    with pytest.raises(ValueError, match='must be one of'): get_runtime('cloud')
    with pytest.raises(TypeError, match='plan'): get_runtime(object())
    rt = LocalRuntime(); assert get_runtime(rt) is rt

def test_dry_run_with_a_runtime_object(tmp_path):
    class Fake(Runtime):
        name = 'fake'
        def plan(self, spec): return {'command': ['fake', spec['train_data']]}
        def submit(self, spec): raise AssertionError('not on a dry run')
    dr = train(TrainConfig(max_steps=2, output_dir=str(tmp_path / 'r')), demo_records(16), runtime=Fake(), dry_run=True)
    assert dr.command == ['fake', str(tmp_path / 'r' / 'data' / 'train.jsonl')] and dr.spec['runtime'] == 'fake'
    assert not (tmp_path / 'r').exists()

def test_subprocess_runtime_handle(tmp_path):
    job = train(TrainConfig(max_steps=2, track=False, num_threads=1, max_length=128, output_dir=str(tmp_path / 'sp')),
                demo_records(16), runtime='subprocess')
    assert isinstance(job, Job) and job.runtime == 'subprocess'
    assert job.command[-5:] == ['-m', 'forge_nb.cli', 'train', '--config', str(tmp_path / 'sp' / 'job.json')]
    assert job.status() in ('pending', 'running', 'completed')
    j2 = TrainJob.load(tmp_path / 'sp')                   # a second handle from the folder alone
    job.wait(timeout=180)
    assert job.status() == j2.status() == 'completed' and job.history().step.tolist() == [1, 2]
    assert Path(job.model_path).name == 'adapter' and job.result().status == 'completed'
    spec = json.loads((tmp_path / 'sp' / 'job.json').read_text())
    assert spec['output_dir'] == str(tmp_path / 'sp') and spec['runtime'] == 'subprocess'

def test_failed_subprocess_reports_error(tmp_path):
    bad = [{'messages': [{'role': 'user', 'content': 'only a question'}]}] * 8
    job = train(TrainConfig(max_steps=1, track=False, output_dir=str(tmp_path / 'bad')), bad, runtime='subprocess')
    with pytest.raises(RuntimeError, match=r'train\.jsonl: record \(row 0\): field .messages. has no assistant turn'): job.wait(timeout=120)
    assert job.status() == 'failed'
