"""The vectorised fast paths of the data stage give exactly what their plain references give (answer letters, word counts and
dedup keys, per-row byte sums, reserved-string counts, JSON lines), including on the odd inputs that make them fall back."""
import json
import numpy as np, pyarrow as pa, pyarrow.compute as pc
from hypothesis import given, settings, strategies as st, HealthCheck
from forge_nb.core.records import encode_jsonl
from forge_nb.data.transform import (answer_letters, parse_options, sanitize_array, may_contain, _count_strings, MSG_TYPE,
                                     RESERVED_PREFIXES, reserved_tokens)
from forge_nb.data.filters import words, normalize_text, exact_duplicates, _word_forms, _row_sums, quality_flags
from forge_nb.data.preparation import _encode_lines

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
# characters that matter to the fast paths: whitespace of every kind, letters and option punctuation, quotes, non-ASCII
ODD = ['A', 'B', 'C', 'D', 'a', 'x', ' ', '  ', '\t', '\n', '\n\n', '\r', '\x0b', '\x1c', '\x1f', '\xa0', '\u2028', '\u3000',
       '(', ')', '.', ':', '"', '\\', 'é', 'É', '😀', '<s>', '[EOS]', 'User:', 'System:', '<|im_end|>', 'http://', 'www.']
text = st.lists(st.sampled_from(ODD), max_size=14).map(''.join)
option_text = st.lists(st.tuples(st.sampled_from(['', ' ', '(', '  ']), st.sampled_from('ABCDE'), st.sampled_from(['.', ')', ':', '']),
                                 st.sampled_from([' ', '', '\t']), st.sampled_from(['x', 'y', 'x y', 'é', '', 'A', 'wrap'])),
                       max_size=5).map(lambda ls: 'Answer Choices:\n' + '\n'.join(''.join(x) for x in ls))

def letter_ref(o, a):
    d = parse_options(o)
    if not d or a is None: return None
    return a if a in d else next((k for k, v in d.items() if v == a), None)

@FAST
@given(st.lists(st.tuples(st.one_of(st.none(), option_text, text), st.one_of(st.none(), st.sampled_from(['A', 'B', 'E', 'x', 'y', 'x y', 'é', '']))),
                max_size=25), st.integers(0, 3))
def test_answer_letters_match_parse_options(rows, cut):
    opts, ans = pa.array([o for o, _ in rows], pa.string()), pa.array([a for _, a in rows], pa.string())
    opts, ans = opts.slice(min(cut, len(opts))), ans.slice(min(cut, len(ans)))   # sliced arrays too
    assert answer_letters(opts, ans).to_pylist() == [letter_ref(o, a) for o, a in zip(opts.to_pylist(), ans.to_pylist())]

@FAST
@given(st.lists(text, max_size=25), st.booleans())
def test_word_forms_match_words(texts, ascii_only):
    if ascii_only: texts = [t.encode('ascii', 'ignore').decode() for t in texts]
    s = pa.array(texts, pa.string())
    ws = words(s)
    nw, keys, _ = _word_forms(s)
    assert nw.tolist() == pc.list_value_length(ws).to_pylist()
    assert keys.to_pylist() == pc.binary_join(ws, ' ').to_pylist() == normalize_text(s).to_pylist()
    norm = pc.binary_join(ws, ' ').to_pylist()
    assert exact_duplicates(s).tolist() == [next((j for j in range(i) if norm[j] == norm[i]), -1) for i in range(len(norm))]
    for k in (1, 2, 3):   # the repetition rule splits only the long texts, with the kernels of the whole array
        want = [len(w) >= k and len(set(w)) / len(w) < 0.6 for w in ws.to_pylist()]
        assert quality_flags(s, min_words_for_repetition=k, min_unique_word_ratio=0.6)['repetitive'].tolist() == want

@FAST
@given(st.lists(st.integers(0, 1), max_size=300), st.lists(st.integers(0, 300), max_size=12))
def test_row_sums(bits, cuts):
    x = np.array(bits, np.uint8)
    o = np.array([0] + sorted(min(c, len(x)) for c in cuts) + [len(x)], np.int64)
    assert _row_sums(o, x).tolist() == [int(x[a:b].sum()) for a, b in zip(o[:-1], o[1:])]

TOKENS = reserved_tokens(None)

@FAST
@given(st.lists(st.one_of(st.none(), text), max_size=25), st.sampled_from([[], ['aa'], ['<s>', 'a:x']]))
def test_sanitize_counts_and_candidates(texts, extra):
    s = pa.array(texts, pa.string())
    strings = RESERVED_PREFIXES + TOKENS + extra
    assert _count_strings(s, strings) == {x: pc.sum(pc.count_substring(s, x)).as_py() or 0 for x in strings}
    rows = may_contain(s, strings)
    assert all(rows[i] for i, t in enumerate(texts) if t is not None and any(x in t for x in strings))   # a superset
    out, counts = sanitize_array(s, RESERVED_PREFIXES, TOKENS + extra)
    assert sum(counts.values()) >= 0 and len(out) == len(s)

@FAST
@given(st.lists(st.tuples(st.one_of(st.none(), st.lists(st.tuples(st.sampled_from(['user', 'assistant', 'system']), st.one_of(st.none(), text)),
                                                    min_size=0, max_size=3)),
                          st.one_of(st.none(), text), st.one_of(st.none(), st.integers(-10, 10 ** 12))), max_size=20),
       st.booleans())
def test_encode_lines_equal_encode_jsonl(rows, same_roles):
    if same_roles:   # the shape the one-join path takes: every chat with the same roles, nothing missing in the first column
        rows = [([('user', n or ''), ('assistant', 'x')], n, i) for _, n, i in rows]
    t = pa.table({'messages': pa.array([None if m is None else [{'role': r, 'content': c} for r, c in m] for m, _, _ in rows], MSG_TYPE),
                  'name': pa.array([n for _, n, _ in rows], pa.string()), 'id': pa.array([i for _, _, i in rows], pa.int64())})
    got = _encode_lines(t).to_pylist()
    assert got == [x + '\n' for x in encode_jsonl(t).to_pylist()]
    for line in got: json.loads(line)
