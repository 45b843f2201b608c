"""The attention encoder-decoder and its batched beam search.

A bidirectional recurrent encoder, a recurrent decoder whose first state is
made from the encoder's last ones, and Luong's "general" attention over the
encoder's outputs (Luong, Pham & Manning, 2015). Token id 0 is padding in
both vocabularies.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD = 0
_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class Seq2Seq(nn.Module):
    """Attention encoder-decoder over token ids.

    Parameters
    ----------
    n_source_tokens, n_target_tokens : int
        Sizes of the two vocabularies, padding (id 0) included.
    embedding_dim : int
        Size of the token embeddings.
    hidden_size : int
        Units of each recurrent layer (of each direction in the encoder).
    num_layers : int
        Recurrent layers of the encoder and of the decoder.
    cell : {"gru", "lstm"}
        Recurrent cell.
    dropout : float
        Dropout on embeddings, between layers and before the output layer.

    Shapes: ``source (Tensor[B, S])``, ``source_lengths (Tensor[B])`` (each at
    least 1), ``target_input (Tensor[B, T])`` give logits ``Tensor[B, T, V]``.
    """

    def __init__(
        self,
        n_source_tokens,
        n_target_tokens,
        *,
        embedding_dim=64,
        hidden_size=128,
        num_layers=1,
        cell="gru",
        dropout=0.0,
    ):
        super().__init__()
        rnn = _CELLS[cell]
        between = dropout if num_layers > 1 else 0.0
        self.source_embedding = nn.Embedding(n_source_tokens, embedding_dim, PAD)
        self.encoder = rnn(
            embedding_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=between,
        )
        self.bridge = nn.Linear(2 * hidden_size, hidden_size)
        self.target_embedding = nn.Embedding(n_target_tokens, embedding_dim, PAD)
        self.decoder = rnn(
            embedding_dim, hidden_size, num_layers, batch_first=True, dropout=between
        )
        self.attention = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.combine = nn.Linear(3 * hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, n_target_tokens)
        self.dropout = nn.Dropout(dropout)
        self.num_layers, self.hidden_size = num_layers, hidden_size

    def encode(self, source, source_lengths):
        """Encoder outputs ``Tensor[B, S, 2H]``, their mask, first decoder state."""
        embedded = self.dropout(self.source_embedding(source))
        packed = pack_padded_sequence(
            embedded, source_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(
            outputs, batch_first=True, total_length=source.shape[1]
        )
        mask = source != PAD
        if isinstance(final, tuple):  # LSTM: (h, c)
            return memory, mask, tuple(self._bridge(state) for state in final)
        return memory, mask, self._bridge(final)

    def _bridge(self, final):
        """``[2L, B, H]`` final states of both directions to ``[L, B, H]``."""
        batch = final.shape[1]
        both = final.view(self.num_layers, 2, batch, self.hidden_size)
        return torch.tanh(self.bridge(torch.cat([both[:, 0], both[:, 1]], dim=-1)))

    def decode(self, target_input, state, memory, mask):
        """Logits ``Tensor[B, T, V]`` for each position, and the last state."""
        embedded = self.dropout(self.target_embedding(target_input))
        outputs, state = self.decoder(embedded, state)
        scores = self.attention(outputs) @ memory.transpose(1, 2)  # [B, T, S]
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        context = torch.softmax(scores, dim=-1) @ memory
        hidden = torch.tanh(self.combine(torch.cat([outputs, context], dim=-1)))
        return self.output(self.dropout(hidden)), state

    def forward(self, source, source_lengths, target_input):
        memory, mask, state = self.encode(source, source_lengths)
        logits, _ = self.decode(target_input, state, memory, mask)
        return logits


def _reorder(state, index):
    """Pick batch rows ``index`` of a GRU state or an LSTM ``(h, c)`` pair."""
    if isinstance(state, tuple):
        return tuple(part[:, index] for part in state)
    return state[:, index]


@torch.inference_mode()
def beam_search(module, source, source_lengths, *, beam_size, max_length, bos, eos):
    """Most probable target of each source by batched beam search.

    Every source keeps ``beam_size`` hypotheses; each step extends all of
    them at once and keeps, per source, the ``beam_size`` best by summed
    log-probability (no length normalisation). A hypothesis that emits
    ``eos`` is finished and keeps its score; a source whose best hypothesis
    is finished is decided and leaves the batch. ``beam_size=1`` is greedy
    decoding.

    Parameters
    ----------
    module : Seq2Seq
        The model, in eval mode.
    source : Tensor[B, S]
        Padded source token ids.
    source_lengths : Tensor[B]
        Source lengths, each at least 1.
    beam_size : int
        Hypotheses kept per source.
    max_length : int
        Most tokens generated, ``eos`` excluded.
    bos, eos : int
        Ids that start and end a target.

    Returns
    -------
    list of list of int
        The best target of each source, without ``bos`` and ``eos``.
    """
    batch, width = source.shape[0], beam_size
    memory, mask, state = module.encode(source, source_lengths)
    rows = torch.arange(batch, device=source.device).repeat_interleave(width)
    memory, mask, state = memory[rows], mask[rows], _reorder(state, rows)
    scores = torch.zeros(batch, width, device=source.device)
    scores[:, 1:] = float("-inf")  # all beams start equal: keep one
    tokens = torch.full((batch * width, 1), bos, device=source.device)
    finished = torch.zeros(batch * width, dtype=torch.bool, device=source.device)
    words = torch.arange(batch, device=source.device)  # source of each row block
    results = [None] * batch
    for step in range(max_length + 1):
        n_words = len(words)
        logits, state = module.decode(tokens[:, -1:], state, memory, mask)
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1)
        log_probs[:, [PAD, bos]] = float("-inf")
        # A finished hypothesis continues with padding, at no cost.
        log_probs[finished] = float("-inf")
        log_probs[finished, PAD] = 0.0
        n_tokens = log_probs.shape[1]
        total = (scores.view(-1, 1) + log_probs).view(n_words, width * n_tokens)
        scores, best = total.topk(width, dim=1)  # sorted: column 0 leads
        offsets = torch.arange(n_words, device=source.device)[:, None] * width
        parents = (best // n_tokens + offsets).view(-1)
        chosen = (best % n_tokens).view(-1, 1)
        tokens = torch.cat([tokens[parents], chosen], dim=1)
        finished = finished[parents] | (chosen.view(-1) == eos)
        state = _reorder(state, parents)
        # A word whose best hypothesis has ended is decided: later steps only
        # add log-probabilities <= 0 to the others. Its rows leave the batch.
        done = finished.view(n_words, width)[:, 0]
        if step == max_length:
            done[:] = True
        if done.any():
            leaders = tokens.view(n_words, width, -1)[done, 0, 1:]
            for word, row in zip(words[done].tolist(), leaders.tolist(), strict=True):
                end = row.index(eos) if eos in row else max_length
                results[word] = row[:end]
            if done.all():
                break
            keep = (~done).repeat_interleave(width)
            rows = torch.nonzero(keep).squeeze(1)
            memory, mask, tokens, finished = (
                memory[rows],
                mask[rows],
                tokens[rows],
                finished[rows],
            )
            state = _reorder(state, rows)
            scores, words = scores[~done], words[~done]
    return results
