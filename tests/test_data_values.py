"Values are never silently changed (issue 16): strings stay byte for byte, numbers become their text (counted), other types are rejects."
import json, math
from pathlib import Path
import pyarrow as pa, pyarrow.compute as pc
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from forge_nb.data.load import load, LoadError
from forge_nb.data.transform import to_chat, RESERVED_PREFIXES, reserved_tokens
from forge_nb.data.preparation import prepare
from forge_nb.core.records import read_records

TOKENS = sorted(reserved_tokens(None), key=len, reverse=True)
PREFIXES = sorted(RESERVED_PREFIXES, key=len, reverse=True)

def clean(s: str) -> str:
    "An independent reference for sanitize without a tokenizer: remove the tokens until none is left, then break the prefixes."
    while any(t in s for t in TOKENS):
        for t in TOKENS: s = s.replace(t, '')
    for p in PREFIXES: s = s.replace(p, p[:-1] + ' :')
    return s

def number_text(v):
    if isinstance(v, int): return str(v)
    return pc.cast(pa.scalar(float(v)), pa.string()).as_py()

def jl(path, rows): Path(path).write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8'); return Path(path)

def test_mixed_column_strings_are_not_quoted(tmp_path):
    "The issue's reproduction: strings in a column that also holds a number, a null and a list come out as they went in."
    rows = [dict(id=1, question='How many?', answer='Two.', tag=1), dict(id=2, question=5, answer='Five.', tag='x'),
            dict(id=3, question='What?', answer=None), dict(id=4, question=['a'], answer='x'),
            dict(id=5, question='Say "hi" \\ there', answer='ok', tag=[1, 'b'])]
    for src in (rows, jl(tmp_path/'m.jsonl', rows)):
        out = tmp_path/('o' + str(isinstance(src, Path)))
        r = prepare(src, out, on_error='reject', splits=(1, 0, 0))
        kept = {x['id']: x for x in r.records()}
        assert kept[1]['messages'][0]['content'] == 'How many?' and kept[1]['tag'] == 1
        assert kept[2]['messages'][0]['content'] == '5' and kept[2]['tag'] == 'x'
        assert kept[5]['messages'][0]['content'] == 'Say "hi" \\ there' and kept[5]['tag'] == [1, 'b']
        assert r.summary['number_as_text'] == {'question': 1}
        rej = {x['record']['id']: x for x in read_records(r.paths['rejects'])}
        assert (rej[3]['reason'], rej[3]['field'], rej[3]['line']) == ('missing_field', 'answer', 3)
        assert (rej[4]['reason'], rej[4]['field'], rej[4]['line'], rej[4]['detail']) == ('wrong_type', 'question', 4, 'expected text, got a list')
        assert rej[3]['record']['question'] == 'What?' and rej[4]['record']['question'] == ['a']   # not re-quoted
        assert r.balanced and r.summary['read'] == 5

def test_wrong_type_raises_with_file_line_and_field(tmp_path):
    jl(tmp_path/'w.jsonl', [dict(question='q', answer='a'), dict(question='q2', answer={'text': 'a'})])
    with pytest.raises(LoadError, match=r"w\.jsonl:2: wrong_type \(field 'answer'\): expected text, got an object"): prepare(tmp_path/'w.jsonl', tmp_path/'o')
    chats = [{'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'ok'}]},
             {'messages': [{'role': 'user', 'content': 7}, {'role': 'assistant', 'content': 'seven'}]},
             {'messages': [{'role': 'user', 'content': 'x'}, {'role': 'assistant', 'content': ['no']}]},
             {'messages': 'not a list'}]
    t, rej = to_chat(chats, on_error='reject')
    assert [m['content'] for m in t.to_pylist()[1]['messages']] == ['7', 'seven'] and t.counts == {'number_as_text': {'messages': 1}}
    assert [(r['line'], r['field'], r['detail']) for r in rej] == [(3, 'messages[1].content', 'expected text, got a list'),
                                                                  (4, 'messages', 'expected a list of {role, content}, got text')]

def test_loaders_keep_what_the_file_says(tmp_path):
    "Arrow's type guesses would change values: date-like strings, big integers, CSV numbers with leading zeros or trailing zeros."
    jl(tmp_path/'d.jsonl', [dict(question='2020-01-01', answer='1999-12-31 23:59:59', big=123456789012345678901), dict(question='q', answer='a', big=1)])
    r = prepare(tmp_path/'d.jsonl', tmp_path/'o', splits=(1, 0, 0))
    got = {x['messages'][0]['content']: x for x in r.records()}
    assert got['2020-01-01']['messages'][1]['content'] == '1999-12-31 23:59:59' and got['2020-01-01']['big'] == 123456789012345678901
    (tmp_path/'c.csv').write_text('question,answer,code\nWhat is 0.50 doubled?,1.00,007\nIs it TRUE?,TRUE,12\nWhen?,2020-01-01,3\n')
    t = load(tmp_path/'c.csv').to_pylist()
    assert [(x['answer'], x['code']) for x in t] == [('1.00', '007'), ('TRUE', '12'), ('2020-01-01', '3')]
    (tmp_path/'n.csv').write_text('question,answer\nHow many legs?,4\nHow many eyes?,2\n')
    n = prepare(tmp_path/'n.csv', tmp_path/'on', splits=(1, 0, 0))
    assert sorted(x['messages'][1]['content'] for x in n.records()) == ['2', '4'] and n.summary['number_as_text'] == {'answer': 2}

PIECES = TOKENS + PREFIXES + ['<', '|', '>', '[', ']', '/', 's', 'Sys', 'tem', ':', 'User', ' ', '\n', '"', '\\', 'é', '中', 'fever', 'cough ']
text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=8).map(''.join)
plain = st.text(alphabet='abcdefghij klmnop', min_size=3, max_size=30)
value = st.one_of(plain, plain, text, st.integers(-2**53, 2**53), st.floats(allow_nan=False, allow_infinity=False, width=64),
                  st.none(), st.booleans(), st.lists(plain, max_size=2), st.dictionaries(st.sampled_from('abc'), plain, max_size=2))
meta = st.one_of(st.none(), plain, st.integers(-1000, 1000), st.lists(st.integers(0, 9), max_size=3), st.dictionaries(st.sampled_from('xy'), plain, max_size=2))

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(value, value, meta), min_size=1, max_size=25), st.booleans())
def test_property_kept_strings_equal_input_or_counted_rewrite(tmp_path_factory, spec, as_file):
    d = tmp_path_factory.mktemp('p')
    rows = [{'id': i, 'question': q, 'answer': a, **({'note': m} if m is not None else {})} for i, (q, a, m) in enumerate(spec)]
    src = jl(d/'in.jsonl', rows) if as_file else rows
    r = prepare(src, d/'out', on_error='reject', splits=(1, 0, 0))
    s = r.summary
    assert s['balanced'] and s['read'] == len(rows) == s['kept_total'] + s['rejected_total']
    kept = {x['id']: x for x in r.records()}
    rejected = {x['record']['id']: x for x in read_records(r.paths['rejects'])}
    assert set(kept) | set(rejected) == set(range(len(rows))) and not set(kept) & set(rejected)   # each row exactly once
    numbers = {}
    for i, row in enumerate(rows):
        kinds = [type(row[k]) for k in ('question', 'answer')]
        if all(k in (str, int, float) for k in kinds):   # the transform wrote its numbers as text (counted even if a later step rejects the row)
            for k in ('question', 'answer'):
                if not isinstance(row[k], str): numbers[k] = numbers.get(k, 0) + 1
        if i in kept:
            assert all(k in (str, int, float) for k in kinds)
            for k, turn in zip(('question', 'answer'), kept[i]['messages']):
                v = row[k]
                want = v if isinstance(v, str) else number_text(v)
                assert turn['content'] == clean(want)                                   # byte for byte, apart from sanitize
                if clean(want) != want: assert s['sanitized']                            # ... and a rewrite is counted
            assert kept[i].get('note') == row.get('note')                               # metadata as it was, any type
        else:
            rj = rejected[i]
            bad = [k for k in ('question', 'answer') if not isinstance(row[k], (str, int, float)) or isinstance(row[k], bool)]
            if any(row[k] is None for k in ('question', 'answer')): assert rj['reason'] in ('missing_field', 'wrong_type')
            elif bad: assert (rj['reason'], rj['field']) == ('wrong_type', bad[0])
            if rj['reason'] in ('missing_field', 'wrong_type'):
                assert {k: rj['record'].get(k) for k in row} == row                     # the record as it was read, not re-quoted
                assert rj['line'] == i + 1
    assert s['number_as_text'] == numbers
