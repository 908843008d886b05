"""Joint intent detection and slot filling on ATIS and SNIPS, as JointBERT (Chen et al., 2019,
"BERT for Joint Intent Classification and Slot Filling") trains it, on a `finetune` model whose
head is "intent_slot": the intent from the pooled vector ([CLS] through BERT's pooler), a slot
tag per word from its first sub-word.

Data: $LLM_JAX_DATA_DIR/<task.corpus>/{train,valid,test}/{seq.in,seq.out,label} (the
slot-gated / JointBERT release), or a user's folders holding the same three files
(task.train_dir, eval_dir, test_dir), read by data/tagging_data.read_intent_slots and recorded
in WORKDIR/data_files.json as "<corpus>.<split>/<file>". Label vocabularies are JointBERT's
(tagging_data.intent_names / tag_names of the training split, "UNK" for what only dev or test
has: ATIS's test split has 5 such intents and 6 such slot tags), saved in WORKDIR/labels.json;
model.num_intents and model.num_labels must equal their sizes (ATIS 22 and 121, SNIPS 8 and 73;
JointBERT's slot list also has "PAD", which here is a weight, not a class).

Words become sub-words exactly as for token_tagging (tasks/tagging.py, data/word_pieces.py);
utterances longer than data.seq_len pieces are cut and their cut words tagged "O" at eval
("slot_cut_words"; at JointBERT's max_seq_len of 50, bert-base-uncased's pieces cut one ATIS
training utterance, by 2 words, and nothing of SNIPS or of either dev or test split).

Loss (JointBERT's): the intent cross-entropy, a mean over the batch's utterances, plus
task.slot_loss_coef (1.0) times the slot cross-entropy, a mean over its labelled sub-words, or
with model.crf=True (JointBERT's --use_crf) the CRF's negative log-likelihood of the
utterance's slot tags, a mean over utterances (tasks/tagging.tag_loss_sums).
Metrics as (sum, weight): "loss" (the row-weighted mean of the batches' totals, as masked_lm's
two-part loss), its exact parts "intent_loss" and "slot_loss", "intent_top1" (0-1) and
"slot_token_accuracy" (0-1, over labelled sub-words). Every eval also scores the whole eval
split with data/tagging_metrics.intent_slot_scores (0-100): "intent_accuracy", "slot_f1" (and
slot_precision / slot_recall: conlleval entities over word tags) and "sentence_accuracy"
(intent and every slot tag right). Gold labels are scored as the files have them (a dev/test
intent or tag unknown to training is never right), predicted "UNK" slot tags as "O".
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np

from llm_jax.data.tagging_data import INTENT_CORPORA, intent_ids, intent_names, read_intent_slots, tag_names
from llm_jax.evaluation.tagging_metrics import intent_slot_scores
from llm_jax.ops.losses import cross_entropy_sums
from llm_jax.tasks.protocols import NUM_TOKENS, mean_metric
from llm_jax.tasks.tagging import TaggedExamples, WordTaggingTask, tag_loss_sums

INTENT_FILES = ("seq.in", "seq.out", "label")


class IntentSlots(WordTaggingTask):
    head = "intent_slot"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="intent_slots",
            corpus="atis",      # "atis" | "snips": the data directory's folder
            train_dir="",       # "": $LLM_JAX_DATA_DIR/<corpus>/train/; or a user's folder
            eval_dir="",        # "": .../valid/ (data.eval_split)
            test_dir="",        # "": .../test/ (data.test_split)
            slot_loss_coef=1.0,  # loss = intent CE + this * slot CE (JointBERT's default 1.0)
            train_examples=0,   # > 0: a fixed random subset of this many training utterances
            eval_examples=0,    # > 0: the eval split's first this many utterances
        ))

    def __init__(self, config, workdir: str, **options):
        c = config.task
        if c.corpus not in INTENT_CORPORA and not (c.train_dir and c.eval_dir):
            raise ValueError(f"config.task.corpus={c.corpus!r}: expected one of {INTENT_CORPORA} "
                             "(a corpus of your own: task.train_dir and eval_dir)")
        if not c.slot_loss_coef >= 0:
            raise ValueError(f"config.task.slot_loss_coef={c.slot_loss_coef!r}: expected >= 0")
        super().__init__(config, workdir, **options)

    def _read(self, split: str):
        folder = self._file(split, ("train_dir", "eval_dir", "test_dir"))
        raw = read_intent_slots(self.cfg.corpus, split, path=folder, encoding=self.data_cfg.encoding)
        return raw, {f"{raw.corpus}.{split}/{name}": raw.path / name for name in INTENT_FILES}

    def _words(self, raw) -> list[list[str]]:
        return raw.words

    def _vocabularies(self, train) -> dict[str, list[str]]:
        return {"tags": tag_names(train), "intents": intent_names(train)}

    def _intents(self, raw, index):
        ids = np.asarray(intent_ids(raw, self.labels["intents"]), np.int32)
        return [raw.intents[i] for i in index], ids[index]

    def loss(self, model, batch, dropout_key=None):
        """(intent CE + slot_loss_coef * slot CE, each its own mean, metrics)."""
        out = model(batch["input_ids"], batch["segment_ids"], batch["mask"], dropout_key=dropout_key)
        tiny = jnp.finfo(jnp.float32).tiny
        w_B = batch["weights"]
        w_BT = batch["label_weights"] * w_B[:, None]
        _, intent_sum, n_rows = cross_entropy_sums(out["intent_logits"], batch["intent_labels"],
                                                   weights=w_B)
        slot_sum, n_slots = tag_loss_sums(model, out["slot_logits"], batch["labels"], w_BT, w_B)
        loss = (intent_sum / jnp.maximum(n_rows, tiny)
                + self.cfg.slot_loss_coef * slot_sum / jnp.maximum(n_slots, tiny))
        intent_right_B = jnp.argmax(out["intent_logits"], -1) == batch["intent_labels"]
        slot_right_BT = jnp.argmax(out["slot_logits"], -1) == batch["labels"]
        n_tokens = jnp.sum(batch["mask"] & (w_B[:, None] > 0)).astype(jnp.float32)
        return loss, {"loss": (loss * n_rows, n_rows), "intent_loss": (intent_sum, n_rows),
                      "slot_loss": (slot_sum, n_slots), "intent_top1": mean_metric(intent_right_B, w_B),
                      "slot_token_accuracy": mean_metric(slot_right_BT, w_BT), NUM_TOKENS: n_tokens}

    def scores(self, examples: TaggedExamples, predictions: dict) -> dict:
        """JointBERT's intent accuracy, slot P/R/F1 and sentence accuracy (0-100), and the
        number of words tagged "O" for not fitting in data.seq_len sub-words."""
        s = intent_slot_scores(examples.intents, predictions["intents"], examples.tags,
                               predictions["tags"])
        return {**s, "slot_cut_words": float(examples.pieces.cut_words)}
