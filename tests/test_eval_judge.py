"LLM-as-judge: swap logic, the OpenAI-compatible backend against a local HTTP server, Bedrock request shape (Stubber), a local HF judge."
import json, math, re, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
import pytest
from forge_nb.evaluation.judge import (BedrockJudge, HFJudge, JudgeBackend, LLMJudge, OpenAIJudge, build_converse_request, judge_pairwise,
                            judge_pointwise, parse_pairwise, parse_rating)
from forge_nb.core.models import load_model
from forge_nb.evaluation.task import TaskResult
from forge_nb.core.embedded import tiny_model_path

def _answers(user):
    return re.search(r'\[Answer A\]\n(.*)\n\n\[Answer B\]\n(.*)\n\nReply', user, re.S).groups()

class _Handler(BaseHTTPRequestHandler):
    "A tiny OpenAI-compatible judge: prefers the answer containing 'Paris'; rates 5 if the answer has 'Paris' else 2."
    seen = []
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        type(self).seen.append((self.path, dict(self.headers), body))
        user = body['messages'][-1]['content']
        if '[Answer A]' in user:
            a, b = _answers(user)
            reply = 'A is right. [[A]]' if 'Paris' in a and 'Paris' not in b else 'B is right. [[B]]' if 'Paris' in b and 'Paris' not in a else 'Same. [[C]]'
        else:
            ans = user.split('[Answer]\n', 1)[1]
            reply = 'Rating: [[5]]' if 'Paris' in ans.split('\n\nReply')[0] else 'Rating: [[2]]'
        out = json.dumps({'choices': [{'message': {'role': 'assistant', 'content': reply}}]}).encode()
        self.send_response(200); self.send_header('Content-Type', 'application/json'); self.send_header('Content-Length', str(len(out)))
        self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass

@pytest.fixture
def server():
    srv = HTTPServer(('127.0.0.1', 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    _Handler.seen = []
    yield f'http://127.0.0.1:{srv.server_address[1]}/v1'
    srv.shutdown(); srv.server_close()

def test_openai_compatible_backend_pairwise_and_pointwise(server):
    j = OpenAIJudge(server, 'judge-model', api_key='sk-test')
    qs = ['Capital of France?'] * 3
    base, cand = ['Lyon', 'Paris', 'Paris'], ['Paris', 'Lyon', 'It is Paris']
    r = judge_pairwise(j, qs, base, cand)
    assert (r['win'], r['tie'], r['loss'], r['consistency'], r['parse_rate']) == (1, 1, 1, 1.0, 1.0)
    assert r['win_rate'] == pytest.approx(0.5)
    path, headers, body = _Handler.seen[0]
    assert path == '/v1/chat/completions' and headers['Authorization'] == 'Bearer sk-test'
    assert body['model'] == 'judge-model' and body['temperature'] == 0 and body['messages'][0]['role'] == 'system'
    assert len(_Handler.seen) == 6                       # every pair judged in both orders
    p = judge_pointwise(j, qs[:2], ['Paris', 'Lyon'], ['Paris', 'Paris'])
    assert (p['score'], p['score_norm'], p['parse_rate']) == (3.5, 0.625, 1.0)
    assert '[Reference answer]\nParis' in _Handler.seen[-1][2]['messages'][-1]['content']

def test_openai_backend_reports_unreachable_endpoint():
    with pytest.raises(RuntimeError, match='127.0.0.1:9'): OpenAIJudge('http://127.0.0.1:9/v1', 'm', retries=0, timeout=2).complete([('', 'hi')])

def test_position_bias_is_cancelled_by_the_swap():
    class First(JudgeBackend):
        def complete(self, prompts, *, max_tokens=256): return ['[[A]]'] * len(prompts)
    r = judge_pairwise(First(), ['q'] * 4, ['a'] * 4, ['b'] * 4)
    assert (r['win'], r['tie'], r['loss'], r['consistency']) == (0, 4, 0, 0.0)
    r = judge_pairwise(First(), ['q'] * 4, ['a'] * 4, ['b'] * 4, swap=False)
    assert r['loss'] == 4                                 # without the swap the bias decides everything

def test_parsers():
    assert [parse_pairwise(t) for t in ['[[B]] wait no [[A]]', 'Verdict: A', 'tie', '']] == ['A', 'A', 'tie', None]
    assert [parse_rating(t) for t in ['Rating: [[3]]', 'rating=4', '[[9]]', '']] == [3, 4, None, None]

def test_bedrock_converse_request_shape_with_stubber():
    import boto3
    from botocore.stub import Stubber, ANY
    client = boto3.client('bedrock-runtime', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')
    j = BedrockJudge('us.amazon.nova-lite-v1:0', client=client)
    with Stubber(client) as st:
        for verdict in ('[[B]]', '[[A]]'):                # forward: candidate (B) wins; swapped: candidate is A and wins
            st.add_response('converse', {'output': {'message': {'role': 'assistant', 'content': [{'text': f'Better. {verdict}'}]}},
                                         'stopReason': 'end_turn', 'usage': {'inputTokens': 10, 'outputTokens': 3, 'totalTokens': 13},
                                         'metrics': {'latencyMs': 5}},
                            expected_params={'modelId': 'us.amazon.nova-lite-v1:0',
                                             'messages': [{'role': 'user', 'content': [{'text': ANY}]}],
                                             'system': [{'text': ANY}],
                                             'inferenceConfig': {'maxTokens': 64, 'temperature': 0.0}})
        r = judge_pairwise(j, ['q'], ['base answer'], ['candidate answer'], max_tokens=64)
        st.assert_no_pending_responses()
    assert r['win'] == 1 and r['consistency'] == 1.0
    req = build_converse_request('m', '', 'u')
    assert 'system' not in req and req['messages'] == [{'role': 'user', 'content': [{'text': 'u'}]}]

def test_local_hf_judge_and_llmjudge_task(server):
    model, tok = load_model(tiny_model_path())
    hf = HFJudge(model, tok)
    replies = hf.complete([('You are a judge.', 'Rate: 2+2=4. Rating: [[n]]')], max_tokens=8)
    assert len(replies) == 1 and isinstance(replies[0], str)
    recs = [{'messages': [{'role': 'user', 'content': 'Capital of France?'}, {'role': 'assistant', 'content': 'Paris'}]}] * 2
    # the tiny model is no judge: its greedy reply carries no [[rating]], so nothing is rated and the score is undefined
    pw = judge_pointwise(hf, ['Capital of France?'], ['Paris'], max_tokens=8)
    assert pw['parse_rate'] == 0.0 and pw['details'][0]['rating'] is None and math.isnan(pw['score']) and math.isnan(pw['score_norm'])
    task = LLMJudge(recs, OpenAIJudge(server, 'j'), max_new_tokens=6)
    r = task.run(model, tok)
    # the scripted judge rates 2 without 'Paris': the tiny model names its own synthetic capital
    assert all('Paris' not in d['answer'] for d in r.details) and [d['rating'] for d in r.details] == [2, 2]
    assert r.axis == 'judge' and r.headline == 'score_norm' and r.n == 2
    assert r.metrics == {'score': 2.0, 'score_norm': 0.25, 'parse_rate': 1.0, 'win_rate': 0.5}
    other = TaskResult('judge', 'judge', dict(r.metrics), 'score_norm', details=[{'answer': 'Paris'}, {'answer': 'Paris!'}])
    # 'Paris' beats the tiny model's answer in both orders, for both questions
    assert task.compare(r, other) == {'win_rate': 1.0, 'win': 2, 'tie': 0, 'loss': 0, 'consistency': 1.0}
    assert task.compare(other, r) == {'win_rate': 0.0, 'win': 0, 'tie': 0, 'loss': 2, 'consistency': 1.0}

def test_unparseable_replies_lower_parse_rate_and_are_not_scored():
    class Scripted(JudgeBackend):
        "Replies from a script, in order: what an unreliable judge says."
        def __init__(self, replies): self.replies = list(replies)
        def complete(self, prompts, *, max_tokens=256): return [self.replies.pop(0) for _ in prompts]
    p = judge_pointwise(Scripted(['Rating: [[4]]', 'I cannot decide.', 'Rating: [[2]]', '[[7]]']), ['q'] * 4, ['a'] * 4)
    assert [d['rating'] for d in p['details']] == [4, None, 2, None]
    assert (p['score'], p['score_norm'], p['parse_rate']) == (3.0, 0.5, 0.5)
    # forward verdicts (A = baseline): B, ?, A; swapped (A = candidate): A, A, ?
    r = judge_pairwise(Scripted(['[[B]]', 'hmm', '[[A]]', '[[A]]', '[[A]]', 'no idea']), ['q'] * 3, ['base'] * 3, ['cand'] * 3)
    assert [(d['verdict_forward'], d['verdict_swapped'], d['outcome']) for d in r['details']] == [('B', 'B', 'win'), (None, 'B', 'tie'), ('A', None, 'tie')]
    assert (r['win'], r['tie'], r['loss'], r['win_rate'], r['consistency'], r['parse_rate']) == (1, 2, 0, 2 / 3, 1.0, 4 / 6)
