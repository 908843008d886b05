"""Zero-/few-shot evaluation (evaluation/lm_scoring.py, evaluation/lm_tasks.py, `lm-eval`):
log-likelihoods against transformers' GPT-2 computed by hand (windowed too), stride perplexity
against a per-token reference, LAMBADA and multiple-choice metrics on a model whose logits are
set by hand, detokenisers, shots, the JSONL format through commands.lm_eval, and bad input."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.data import CharTokenizer
from llm_jax.evaluation import detokenizers, lm_scoring, lm_tasks
from llm_jax.evaluation.lm_tasks import Task, TaskConfig

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MAX_LEN = 32


def _hf_gpt2(vocab_size, eos):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab_size, n_positions=MAX_LEN, n_embd=32,
                                     n_layer=2, n_head=2, initializer_range=0.2,
                                     bos_token_id=eos, eos_token_id=eos)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """(HF model, workdir made by import-hf, our model, tokenizer): a random GPT-2 with a
    300-token byte-level BPE fitted on made-up words, its window 32 tokens."""
    import llm_jax
    from llm_jax.data import GPT2BPETokenizer
    from llm_jax.data.hf_tokenizer_files import write_hf_tokenizer
    from llm_jax.training import commands

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 7))) for _ in range(60)]
    text = [" ".join(rng.choice(words, 12)) + " ." for _ in range(300)]
    tokenizer = GPT2BPETokenizer.fit(text, vocab_size=300, min_frequency=1)
    hf = _hf_gpt2(320, tokenizer.eos_id)
    root = tmp_path_factory.mktemp("lm_eval")
    hf.save_pretrained(root / "hf", safe_serialization=True)
    write_hf_tokenizer(tokenizer, str(root / "hf"))
    commands.import_hf(str(root / "hf"), str(root / "run"))
    model, ours_tok, _ = llm_jax.load(str(root / "run"))
    return hf, str(root / "run"), model, ours_tok


def _torch_scores(hf, ctx, cont):
    """lm-eval's loglikelihood by hand: the last max_len + 1 tokens, less the last, as input;
    log_softmax gathered at the continuation's tokens; argmax hits."""
    window = (list(ctx) + list(cont))[-(MAX_LEN + 1):]
    inputs, k = window[:-1], len(cont)
    with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([inputs])).logits[0].double(), -1).numpy()
    rows = logp[len(inputs) - k:]
    return rows[np.arange(k), cont], rows.argmax(-1) == np.asarray(cont)


def test_loglikelihood_matches_transformers_by_hand(gpt2):
    hf, _, model, _ = gpt2
    rng = np.random.default_rng(1)
    shapes = [(3, 2), (10, 5), (1, 1), (20, 12), (1, MAX_LEN), (40, 6), (70, 20), (31, 1)]
    requests = [(rng.integers(0, 320, a).tolist(), rng.integers(0, 320, b).tolist())
                for a, b in shapes]  # the last three are longer than the window
    # a continuation that is the greedy one: every token its position's argmax
    ctx, cont = rng.integers(0, 320, 6).tolist(), []
    for _ in range(4):
        with torch.no_grad():
            cont.append(int(hf(torch.tensor([ctx + cont])).logits[0, -1].argmax()))
    requests.append((ctx, cont))
    got = lm_scoring.loglikelihood_tokens(model, requests, batch_size=3)  # 3 buckets, padding
    for (ctx, cont), scored in zip(requests, got):
        want_logp, want_greedy = _torch_scores(hf, ctx, cont)
        np.testing.assert_allclose(scored.token_logprobs, want_logp, atol=1e-4)
        np.testing.assert_allclose(scored.logprob, want_logp.sum(), atol=1e-4)
        np.testing.assert_array_equal(scored.token_greedy, want_greedy)
    assert got[-1].greedy and not any(s.greedy for s in got[:-1])


def test_strings_are_encoded_as_lm_eval_encodes_them(gpt2):
    hf, _, model, tok = gpt2
    ids = lambda s: tok.encode(s).tolist()
    # trailing whitespace of the context moves to the continuation; the continuation is what
    # the whole string's tokens hold after the context's
    ctx, cont = lm_scoring.encode_pair(tok, "abc defg ", "hij")
    assert ctx == ids("abc defg") and cont == ids("abc defg hij")[len(ctx):]
    assert lm_scoring.encode_pair(tok, "", " abc") == ([tok.eos_id], ids(" abc"))
    [scored] = lm_scoring.loglikelihood(model, tok, [("abc defg", " hij ba")])
    want, _ = _torch_scores(hf, ids("abc defg"), ids("abc defg hij ba")[len(ids("abc defg")):])
    np.testing.assert_allclose(scored.logprob, want.sum(), atol=1e-4)
    with pytest.raises(ValueError, match="no end-of-text token"):
        lm_scoring.encode_pair(CharTokenizer(list("ab ")), "  ", "ab")


def test_stride_windows_score_every_token_once():
    for n, window, stride in ((100, 16, 5), (100, 16, 16), (17, 16, 4), (3, 16, 8), (50, 8, 1)):
        seen = []
        for i, (begin, first, end) in enumerate(lm_scoring.stride_windows(n, window, stride)):
            assert end - 1 - begin <= window and begin < first < end
            assert begin == i * stride or i == 0
            if begin:  # every window after the first keeps window - stride + 1 tokens of context
                assert first - begin >= window - stride + 1
            seen += range(first, end)
        assert seen == list(range(1, n))
    with pytest.raises(ValueError, match="stride=17 must be between 1 and the window"):
        lm_scoring.stride_windows(10, 16, 17)


def test_stride_perplexity_matches_a_per_token_reference(gpt2):
    hf, _, model, _ = gpt2
    ids = np.random.default_rng(2).integers(0, 320, 75).tolist()

    def reference(seq, stride):
        """Each token t from the window that first reaches it: begin k * stride, the smallest k
        with t <= k * stride + MAX_LEN, so its context is seq[begin:t]. (Causal: the logits of
        seq[begin:t] at its last position are those of seq[begin:] there, one forward a begin.)"""
        begins = {t: max(0, math.ceil((t - MAX_LEN) / stride)) * stride for t in range(1, len(seq))}
        total = 0.0
        for begin in sorted(set(begins.values())):
            with torch.no_grad():
                logits = hf(torch.tensor([seq[begin:begin + MAX_LEN]])).logits[0].double()
            logp = torch.log_softmax(logits, -1).numpy()
            total -= sum(logp[t - 1 - begin, seq[t]] for t, b in begins.items() if b == begin)
        return total

    for stride in (MAX_LEN, 8):
        nll, count = lm_scoring.stride_nll(model, ids, stride=stride, prefix=7, batch_size=4)
        assert count == len(ids)  # the prefix makes the first token scored too
        np.testing.assert_allclose(nll, reference([7] + ids, stride), rtol=1e-5)
    # a text that fits in one window: the full sequence's own log-likelihood
    short = ids[:20]
    with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([short])).logits[0].double(), -1).numpy()
    nll, count = lm_scoring.stride_nll(model, short[1:], stride=MAX_LEN, prefix=short[0])
    np.testing.assert_allclose(nll, -logp[np.arange(19), short[1:]].sum(), rtol=1e-5)


# ------------------------------------------------------------ a model whose logits are set


class BigramLM(nnx.Module):
    """logits[b, t] = table[tokens[b, t]]: the next token's logits depend on this one alone."""

    def __init__(self, table, max_len=64):
        self.table = nnx.Param(jnp.asarray(table, jnp.float32))
        self.max_len = max_len

    def __call__(self, tokens_BT):
        return self.table[...][tokens_BT]


CHARS = CharTokenizer(list(" abcdwxyz\n-,"))


def _bigram(rules, default=0.0):
    """A BigramLM over CHARS: rules {(prev, next): logit}, every other logit `default`."""
    table = np.full((CHARS.vocab_size, CHARS.vocab_size), default, np.float32)
    for (prev, nxt), logit in rules.items():
        table[CHARS.encode(prev)[0], CHARS.encode(nxt)[0]] = logit
    return BigramLM(table), table


def _logp(table, text):
    """log p(text[1:] | text[0]) under the bigram table, in float64."""
    ids = CHARS.encode(text)
    t = table.astype(np.float64)
    logp = t - np.log(np.exp(t).sum(-1, keepdims=True))
    return float(sum(logp[a, b] for a, b in zip(ids[:-1], ids[1:])))


def test_lambada_metrics_on_known_answers():
    # argmax after y, z, w: " "; after " ": "a"; after "a": "b"; after "d": "b"
    model, table = _bigram({("y", " "): 5, ("z", " "): 5, ("w", " "): 5, (" ", "a"): 5,
                            ("a", "b"): 5, ("d", "b"): 5})
    records = [{"context": "x y", "continuation": "ab"},   # every token greedy
               {"context": "x z", "continuation": "ac"},   # the last token is not
               {"context": "x w", "continuation": "db"}]   # only the last token is
    task = Task(TaskConfig("toy", "completion"), records, None, [])
    metrics, details = lm_tasks.evaluate(model, CHARS, task)
    assert metrics["acc"] == pytest.approx(1 / 3) and metrics["acc_last_token"] == pytest.approx(2 / 3)
    assert [d["greedy"] for d in details] == [True, False, False]
    ll = [_logp(table, "y ab"), _logp(table, "z ac"), _logp(table, "w db")]
    np.testing.assert_allclose([d["loglikelihood"] for d in details], ll, rtol=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(-np.mean(ll)), rel=1e-5)
    assert metrics["token_perplexity"] == pytest.approx(math.exp(-sum(ll) / 9), rel=1e-5)
    assert metrics["continuation_tokens"] == 9 and details[0]["prompt"] == "x y"


def test_multiple_choice_acc_and_acc_norm_disagree_on_length():
    # " a" beats " bbbb" in total, but per character " bbbb" wins: after "b", "b" is near-certain
    model, table = _bigram({("x", " "): 6, (" ", "a"): 3, (" ", "b"): 2, ("b", "b"): 12,
                            ("y", " "): 6})
    records = [{"context": "x", "choices": ["a", "bbbb"], "label": 1},
               {"context": "y", "choices": ["c", "a"], "label": 1}]
    task = Task(TaskConfig("toy", "multiple_choice"), records, None, [])
    metrics, details = lm_tasks.evaluate(model, CHARS, task)
    ll = [_logp(table, "x a"), _logp(table, "x bbbb")]
    np.testing.assert_allclose(details[0]["loglikelihoods"], ll, rtol=1e-5)
    assert ll[0] > ll[1] and ll[0] / 1 < ll[1] / 4  # lm-eval: len(choice), no delimiter
    assert (details[0]["pred"], details[0]["pred_norm"]) == (0, 1)
    assert (details[1]["pred"], details[1]["pred_norm"]) == (1, 1)
    assert (metrics["acc"], metrics["acc_norm"]) == (0.5, 1.0)
    assert metrics["acc_stderr"] == pytest.approx(0.5)  # sample std 0.707 / sqrt(2)


def test_perplexity_task_counts_original_words_and_bytes():
    model, _ = _bigram({}, default=0.0)  # uniform: every token costs log(vocab)
    original = " a b @-@ c \n d , w \n"
    task = Task(TaskConfig("toy", "perplexity", detokenizer="wikitext"), [original], None, [])
    metrics, _ = lm_tasks.evaluate(model, CHARS, task, stride=4)
    text = detokenizers.wikitext_detokenize(original)
    assert text == " a b-c\nd, w\n"
    # CharTokenizer has no end-of-text token: the first character is context, not scored
    assert metrics["tokens"] == len(text) - 1
    assert metrics["nll"] == pytest.approx((len(text) - 1) * math.log(CHARS.vocab_size), rel=1e-5)
    assert (metrics["words"], metrics["bytes"]) == (7, len(original))  # a b @-@ c d , w
    assert metrics["word_perplexity"] == pytest.approx(math.exp(metrics["nll"] / 7), rel=1e-9)
    assert metrics["token_perplexity"] == pytest.approx(CHARS.vocab_size, rel=1e-5)
    with pytest.raises(ValueError, match="--shots=1: task toy scores a text's perplexity"):
        lm_tasks.evaluate(model, CHARS, task, shots=1)


def test_detokenizers_on_known_strings():
    wiki = (' = = Early life = = \n The 1 @,@ 000 km @-@ long road , built in 1999 @.@ 5 '
            '( approx ) ; it is " big " . \n = = = Notes = = = \n')
    assert detokenizers.wikitext_detokenize(wiki) == (
        ' == Early life ==\nThe 1,000 km-long road, built in 1999.5 (approx); it is "big".\n'
        '=== Notes ===\n')
    assert detokenizers.wikitext_detokenize("the players ' union") == "the players' union"
    assert detokenizers.wikitext_detokenize("it 's over") == "it's over"
    ptb = " no it was n't black monday \n but the dow 's N N points fell $ N to # N <unk> \n"
    assert detokenizers.ptb_detokenize(ptb) == (
        " no it wasn't black monday\nbut the dow's 1 1 points fell $1 to #1 <unk>\n")


# ------------------------------------------------------------ shots


def _mc_task(n_train=20, train=True):
    rec = lambda i: {"context": f"q{i}", "choices": [f"a{i}", f"b{i}"], "label": i % 2}
    examples = [rec(i) for i in range(100, 105)]
    pool = [rec(i) for i in range(n_train)] + [dict(examples[2])] if train else None
    return Task(TaskConfig("toy", "multiple_choice", separator="\n##\n"), examples, pool, [])


def test_shots_are_deterministic_and_never_the_example_itself():
    task = _mc_task()
    a = [lm_tasks.draw_shots(task, i, 5, seed=0) for i in range(5)]
    assert a == [lm_tasks.draw_shots(task, i, 5, seed=0) for i in range(5)]
    assert a != [lm_tasks.draw_shots(task, i, 5, seed=1) for i in range(5)]
    assert all(len(set(p)) == 5 for p in a)
    # the train pool holds a copy of example 2 (index 20): never drawn for it, even with all
    assert 20 not in lm_tasks.draw_shots(task, 2, 20, seed=0)
    context = lm_tasks.fewshot_context(task, 1, 2, seed=3)
    first, second = lm_tasks.draw_shots(task, 1, 2, seed=3)
    shot = lambda r: f"{r['context']} {r['choices'][r['label']]}"
    assert context == f"{shot(task.train[first])}\n##\n{shot(task.train[second])}\n##\nq101"
    # no train split: drawn from the other examples, a --limit run sees the same shots
    own = _mc_task(train=False)
    for i in range(5):
        assert i not in lm_tasks.draw_shots(own, i, 4, seed=0)
    with pytest.raises(ValueError, match="--shots=5: task toy has only 4 other examples"):
        lm_tasks.draw_shots(own, 0, 5, seed=0)
    chars = CharTokenizer(list(" abq0123456789\n#"))
    model = BigramLM(np.zeros((chars.vocab_size,) * 2), max_len=128)
    full, _ = lm_tasks.evaluate(model, chars, own, shots=2, seed=4)
    _, limited = lm_tasks.evaluate(model, chars, own, shots=2, seed=4, limit=1)
    assert limited[0]["prompt"] == lm_tasks.fewshot_context(own, 0, 2, seed=4)
    assert full["examples"] == 5


# ------------------------------------------------------------ JSONL through lm-eval


def _write_jsonl(path, lines):
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n"
                            for x in lines))
    return str(path)


def test_jsonl_tasks_end_to_end_through_the_command(gpt2, tmp_path):
    from llm_jax.training import commands

    hf, workdir, _, tok = gpt2
    _write_jsonl(tmp_path / "train.jsonl", [
        {"question": "abc", "choices": ["defg", "hij"], "label": 0},
        {"question": "ba dc", "choices": ["ab", "cd"], "label": 1}])
    mc = _write_jsonl(tmp_path / "mc.jsonl", [
        {"config": {"prompt": "Q: {question}\nA:", "train": "train.jsonl"}},
        {"question": "hij ab", "choices": ["abc", "defg", "ij"], "label": 2},
        "",
        {"question": "ce", "choices": ["ab", "abcdefg"], "label": 0}])
    out = tmp_path / "out.json"
    summary = commands.lm_eval(workdir, mc, shots=1, seed=0, out=str(out), progress=False)
    assert (summary["kind"], summary["examples"], summary["shots"]) == ("multiple_choice", 2, 1)
    assert set(summary) >= {"acc", "acc_norm", "acc_stderr", "sources"}
    written = json.loads(out.read_text())
    assert written["acc"] == summary["acc"]
    first = written["per_example"][0]
    prompt = first["prompt"]
    shot = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[
        lm_tasks.draw_shots(lm_tasks.read_jsonl_task(mc), 0, 1, 0)[0]])
    assert prompt == (f"Q: {shot['question']}\nA: {shot['choices'][shot['label']]}\n\n"
                      "Q: hij ab\nA:")
    for choice, ll in zip(["abc", "defg", "ij"], first["loglikelihoods"]):
        ctx = tok.encode(prompt).tolist()
        cont = tok.encode(prompt + " " + choice).tolist()[len(ctx):]
        np.testing.assert_allclose(ll, _torch_scores(hf, ctx, cont)[0].sum(), atol=1e-4)

    completion = _write_jsonl(tmp_path / "completion.jsonl", [
        {"context": "abc defg", "continuation": "hij"}, {"context": "", "continuation": "ba"}])
    summary = commands.lm_eval(workdir, completion, limit=2, progress=False)
    assert summary["kind"] == "completion" and summary["examples"] == 2
    assert 0 <= summary["acc"] <= summary["acc_last_token"] <= 1
    want = [_torch_scores(hf, tok.encode("abc defg").tolist(),
                          tok.encode("abc defg hij").tolist()[len(tok.encode("abc defg")):])[0],
            _torch_scores(hf, [tok.eos_id], tok.encode(" ba").tolist())[0]]
    assert summary["loglikelihood"] == pytest.approx(np.mean([w.sum() for w in want]), abs=1e-4)


@pytest.mark.parametrize("lines, match", [
    ([{"context": "a", "choices": ["x", "y"], "label": 0}, {"context": "b", "choices": ["x"]}],
     r"bad\.jsonl:2: missing field 'label'"),
    ([{"context": "a", "continuation": "x"}, {"continuation": "y"}],
     r"bad\.jsonl:2: missing field 'context' \(the prompt template names it\)"),
    ([{"context": "a", "choices": ["x", "y"], "label": 2}],
     r"bad\.jsonl:1: field 'label' must be an index into choices \(0..1\), got 2"),
    ([{"context": "a", "answer": "x"}], r"bad\.jsonl:1: a record needs 'choices' and 'label'"),
    (['{"context": "a",'], r"bad\.jsonl:1: not valid JSON"),
    ([{"config": {"promt": "{context}"}}, {"context": "a", "continuation": "x"}],
     r"bad\.jsonl:1: unknown config field 'promt'"),
    ([{"config": {"train": "missing.jsonl"}}, {"context": "a", "continuation": "x"}],
     r"bad\.jsonl: config field 'train': no such file"),
    ([{"config": {}}], r"bad\.jsonl: no records"),
])
def test_bad_jsonl_is_one_line_naming_file_line_and_field(lines, match, tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        lm_tasks.load_task(path)
    assert "\n" not in str(info.value)


def test_bad_task_and_flags_are_named(gpt2, tmp_path):
    from llm_jax.training import commands

    _, workdir, _, _ = gpt2
    with pytest.raises(ValueError, match=r"--task='hellaswag': not a built-in task \(lambada, "
                                         r"ptb, sst2, wikitext2\) nor a \.jsonl file"):
        commands.lm_eval(workdir, "hellaswag", progress=False)
    with pytest.raises(FileNotFoundError, match=r"--task=.*nope\.jsonl: no such file"):
        commands.lm_eval(workdir, str(tmp_path / "nope.jsonl"), progress=False)
    with pytest.raises(ValueError, match=r"--shots=-1: must be >= 0"):
        commands.lm_eval(workdir, "lambada", shots=-1, progress=False)
    task = _write_jsonl(tmp_path / "t.jsonl", [{"context": "a", "continuation": "b"}])
    with pytest.raises(ValueError, match=r"--stride=4: only perplexity tasks"):
        commands.lm_eval(workdir, task, stride=4, progress=False)


# ------------------------------------------------------------ the built-in files


def test_builtin_readers_on_the_real_files(monkeypatch):
    from tests.conftest import require_real_data

    root = require_real_data("lambada/lambada_test.jsonl", "wikitext-2/wiki.test.tokens",
                             "ptb/ptb.test.txt", "glue/SST-2")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
    lambada = lm_tasks.load_task("lambada")
    assert len(lambada.examples) == 5153 and lambada.train is None
    first = lambada.examples[0]
    assert first["continuation"] == "signs" and first["context"].endswith("I don't care about")
    wiki = lm_tasks.load_task("wikitext2", limit=3)
    assert wiki.examples == [" \n = Robert <unk> = \n \n"]
    assert lm_tasks.load_task("ptb", limit=1).examples[0].startswith(" no it was n't black")
    sst2 = lm_tasks.load_task("sst2")
    assert (len(sst2.examples), len(sst2.train)) == (872, 67349)
    assert lm_tasks.render_prompt(sst2.config, sst2.examples[0]) == (
        "one long string of cliches .\nQuestion: Is this sentence positive or negative?\nAnswer:")


def test_bad_lambada_line_is_named(tmp_data_dir):
    (tmp_data_dir / "lambada").mkdir()
    _write_jsonl(tmp_data_dir / "lambada" / "lambada_test.jsonl",
                 [{"text": "a passage ending in word"}, {"txt": "no text field"}])
    with pytest.raises(ValueError, match=r"lambada_test\.jsonl:2: field 'text' must be a string"):
        lm_tasks.load_task("lambada")
