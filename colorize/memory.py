"""The memory bank: permanent, working and long-term memory, top-k readout and consolidation.

Pure tensor logic, batch size 1, both colour channels in one group (the official code's
multi-object bookkeeping reduces to a single group for ColorMNet). Elements are stride-16
positions of memory frames. Values are stored transposed, one row per element, so the top-k
readout sums 30 weighted rows per query instead of multiplying by a dense, mostly-zero affinity.

References are permanent: they sit at the head of working memory, as the official code keeps
its one reference as the first working entry, and consolidation and pruning never touch them.
With one reference the layout, and so every number, is the official one; further (keyframe)
references are inserted after the first, before the ordinary entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Life counters start slightly above zero so that use / life is defined for fresh elements.
INITIAL_LIFE = 1e-7


@dataclass(frozen=True)
class MemoryConfig:
    """Knobs of the memory; defaults are the official ones."""

    top_k: int = 30
    max_mid_term_frames: int = 10
    min_mid_term_frames: int = 5
    num_prototypes: int = 128
    max_long_term_elements: int = 10000
    enable_long_term: bool = True
    # Elements per similarity block when reading out; bounds the temporaries, not the result.
    readout_block_elements: int = 1 << 25

    def validate(self) -> None:
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.enable_long_term:
            if not 1 <= self.min_mid_term_frames < self.max_mid_term_frames:
                raise ValueError("need 1 <= min_mid_term_frames < max_mid_term_frames")
            if self.num_prototypes < 1:
                raise ValueError("num_prototypes must be at least 1")
            if self.max_long_term_elements <= self.num_prototypes:
                raise ValueError("max_long_term_elements must exceed num_prototypes")


class _Store:
    """Growable columns of memory elements: keys, shrinkage, values, optional selection/usage."""

    def __init__(self, with_selection: bool, with_usage: bool) -> None:
        self.with_selection = with_selection
        self.with_usage = with_usage
        self.keys: torch.Tensor | None = None        # (CK, N)
        self.shrinkage: torch.Tensor | None = None   # (N,)
        self.selection: torch.Tensor | None = None   # (CK, N)
        self.values: torch.Tensor | None = None      # (N, CV_total)
        self.use: torch.Tensor | None = None         # (N,) float32
        self.life: torch.Tensor | None = None        # (N,) float32

    @property
    def size(self) -> int:
        return 0 if self.keys is None else self.keys.shape[1]

    def append(self, keys: torch.Tensor, shrinkage: torch.Tensor, values: torch.Tensor,
               selection: torch.Tensor | None) -> None:
        def grow(old: torch.Tensor | None, new: torch.Tensor, dim: int) -> torch.Tensor:
            return new if old is None else torch.cat((old, new), dim=dim)

        count = keys.shape[1]
        self.keys = grow(self.keys, keys, 1)
        self.shrinkage = grow(self.shrinkage, shrinkage, 0)
        self.values = grow(self.values, values, 0)
        if self.with_selection:
            self.selection = grow(self.selection, selection, 1)
        if self.with_usage:
            self.use = grow(self.use, keys.new_zeros(count, dtype=torch.float32), 0)
            self.life = grow(self.life, keys.new_full((count,), INITIAL_LIFE, dtype=torch.float32), 0)

    def keep(self, index: torch.Tensor | slice) -> None:
        """Keep only the elements at ``index`` (a slice or a 1-D index/boolean tensor)."""
        self.keys = self.keys[:, index]
        self.shrinkage = self.shrinkage[index]
        self.values = self.values[index]
        if self.with_selection:
            self.selection = self.selection[:, index]
        if self.with_usage:
            self.use = self.use[index]
            self.life = self.life[index]

    def insert(self, at: int, keys: torch.Tensor, shrinkage: torch.Tensor, values: torch.Tensor,
               selection: torch.Tensor | None) -> None:
        """Put new elements before position ``at`` (appending when ``at`` is the size)."""
        if at >= self.size:
            self.append(keys, shrinkage, values, selection)
            return

        def put(old: torch.Tensor, new: torch.Tensor, dim: int) -> torch.Tensor:
            head, tail = old.narrow(dim, 0, at), old.narrow(dim, at, old.shape[dim] - at)
            return torch.cat((head, new, tail), dim=dim)

        count = keys.shape[1]
        self.keys = put(self.keys, keys, 1)
        self.shrinkage = put(self.shrinkage, shrinkage, 0)
        self.values = put(self.values, values, 0)
        if self.with_selection:
            self.selection = put(self.selection, selection, 1)
        if self.with_usage:
            self.use = put(self.use, keys.new_zeros(count, dtype=torch.float32), 0)
            self.life = put(self.life, keys.new_full((count,), INITIAL_LIFE, dtype=torch.float32), 0)

    FIELDS = ("keys", "shrinkage", "selection", "values", "use", "life")

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The stored columns as independent tensors (values may be views of a joined copy)."""
        return {f"{prefix}{name}": getattr(self, name).clone() for name in self.FIELDS
                if getattr(self, name) is not None}

    def load_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        for name in self.FIELDS:
            value = tensors.get(f"{prefix}{name}")
            setattr(self, name, None if value is None else value.clone())

    def add_usage(self, usage: torch.Tensor) -> None:
        self.use += usage
        self.life += 1

    def normalized_usage(self) -> torch.Tensor:
        return self.use / self.life


def memory_operand(memory_keys: torch.Tensor, memory_shrinkage: torch.Tensor) -> torch.Tensor:
    """The memory side of :func:`similarity`: ``(2*CK + 1, N)`` float32, fixed per element."""
    keys = memory_keys.float()
    factor = memory_shrinkage.float()[None, :] / math.sqrt(keys.shape[0])
    return torch.cat((-keys.pow(2), 2 * keys, torch.ones_like(keys[:1])), 0) * factor


def query_operand(query_keys: torch.Tensor, query_selection: torch.Tensor) -> torch.Tensor:
    """The query side of :func:`similarity`: ``(Q, 2*CK + 1)`` float32."""
    keys, selection = query_keys.float(), query_selection.float()
    b_sq = (selection * keys.pow(2)).sum(0, keepdim=True)
    return torch.cat((selection, keys * selection, -b_sq), 0).t()


def similarity(memory_keys: torch.Tensor, memory_shrinkage: torch.Tensor,
               query_keys: torch.Tensor, query_selection: torch.Tensor) -> torch.Tensor:
    """Negative shrunk, selection-weighted squared distance: ``(Q, N)``, one row per query.

    The expanded form ``(-|mk|^2.qe + 2 mk.(qk*qe) - qe.qk^2) * ms / sqrt(CK)``, as the
    checkpoint was trained with (it differs from the direct form in the last bits), written as
    one matrix product over ``2*CK + 1`` stacked channels with ``ms / sqrt(CK)`` folded into the
    memory side: no elementwise pass over the ``Q x N`` scores, and a memory side that depends
    on the stored elements only (:class:`MemoryBank` keeps it between writes). Query rows make
    the top-k run along contiguous memory.
    """
    return query_operand(query_keys, query_selection) @ memory_operand(memory_keys, memory_shrinkage)


def weighted_rows(rows: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``out[q] = sum_j weights[q, j] * rows[index[q, j]]``: ``(N, C)``, ``(Q, k)`` -> ``(Q, C)``.

    ``embedding_bag`` sums the rows without building the gathered ``(Q, k, C)`` block (96 MB per
    frame at 448x448); Apple's MPS backend lacks it, so there the block is gathered.
    """
    if rows.device.type == "mps":
        gathered = rows.index_select(0, index.reshape(-1)).view(*index.shape, rows.shape[1])
        return torch.bmm(weights.unsqueeze(1), gathered)[:, 0]
    return F.embedding_bag(index, rows, mode="sum", per_sample_weights=weights)


class MemoryBank:
    """Working and long-term memory of one video, plus the hidden state."""

    def __init__(self, config: MemoryConfig) -> None:
        config.validate()
        self.config = config
        long_term = config.enable_long_term
        self.work = _Store(with_selection=long_term, with_usage=long_term)
        # The first ``permanent_elements`` of working memory are references: never consolidated.
        self.permanent_elements = 0
        # Long-term usage only matters for pruning; counting it always gives the same outputs as
        # the official per-video switch whenever pruning can happen at all.
        self.long = _Store(with_selection=False, with_usage=True)
        self.elements_per_frame: int | None = None
        self.hidden: torch.Tensor | None = None
        self.compressions = 0
        self.prunings = 0
        # Memory-match score of the last read (see :meth:`read`), a 0-d float32 tensor.
        self.last_match: torch.Tensor | None = None
        # [long; work] joined for reading, rebuilt only after a write (every mem_every frames),
        # not concatenated on every read.
        self._joined: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- writing -------------------------------------------------------------------------------

    def add(self, key: torch.Tensor, shrinkage: torch.Tensor, value: torch.Tensor,
            selection: torch.Tensor | None, permanent: bool | None = None) -> None:
        """Add one memory frame: ``key (1,CK,h,w)``, ``shrinkage (1,1,h,w)``,
        ``value (1,2,CV,h,w)``, ``selection (1,CK,h,w)``. ``permanent``: a reference, kept
        whatever consolidation and pruning do; by default only the first frame added is one
        (the official rule)."""
        positions = key.shape[-2] * key.shape[-1]
        if self.elements_per_frame is None:
            self.elements_per_frame = positions
        elif positions != self.elements_per_frame:
            raise ValueError("every memory frame of a video must have the same size")
        keys = key.reshape(key.shape[1], positions)
        values = value.reshape(-1, positions).t().contiguous()   # rows are read by index
        self._joined = None
        if permanent is None:
            permanent = self.permanent_elements == 0 and self.work.size == 0
        sel = selection.reshape(selection.shape[1], positions) if self.work.with_selection else None
        if permanent:
            self.work.insert(self.permanent_elements, keys, shrinkage.reshape(positions), values, sel)
            self.permanent_elements += positions
            return
        self.work.append(keys, shrinkage.reshape(positions), values, sel)

        c = self.config
        # The official working memory counts its one reference as a frame; further references
        # do not count, so that however many there are the working budget stays the same.
        counted = self.work.size - max(0, self.permanent_elements - positions)
        if c.enable_long_term and counted >= c.max_mid_term_frames * positions:
            if self.long.size >= c.max_long_term_elements - c.num_prototypes:
                self._prune_long_term(c.max_long_term_elements - c.num_prototypes)
            with torch.autocast(key.device.type, enabled=False):
                self._consolidate()

    def _consolidate(self) -> None:
        """Turn the middle of working memory into prototypes in long-term memory.

        The references (the first entries) and the newest ``min_mid_term_frames - 1`` entries stay.
        """
        c = self.config
        hw = self.elements_per_frame
        start, end = self.permanent_elements, self.work.size - (c.min_mid_term_frames - 1) * hw
        work = self.work
        cand_keys = work.keys[:, start:end]
        cand_shrinkage = work.shrinkage[start:end]
        cand_values = work.values[start:end]
        usage = work.normalized_usage()[start:end]
        count = min(c.num_prototypes, end - start)
        _, picked = torch.topk(usage, k=count, dim=0, largest=True, sorted=True)
        proto_keys = cand_keys[:, picked]
        proto_selection = work.selection[:, start:end][:, picked]
        # Each prototype gathers candidates by a plain softmax over all candidates.
        weights = similarity(cand_keys, cand_shrinkage, proto_keys, proto_selection).softmax(dim=1)
        proto_values = weights.to(cand_values.dtype) @ cand_values
        proto_shrinkage = weights @ cand_shrinkage.to(weights.dtype)
        keep = torch.ones(work.size, dtype=torch.bool, device=work.keys.device)
        keep[start:end] = False
        work.keep(keep)
        self.long.append(proto_keys, proto_shrinkage.to(cand_shrinkage.dtype), proto_values, None)
        self.compressions += 1

    def _prune_long_term(self, target_size: int) -> None:
        """Drop the least used long-term elements down to at most ``target_size``."""
        excess = self.long.size - target_size
        if excess <= 0:
            return
        usage = self.long.normalized_usage()
        lowest, _ = torch.topk(usage, k=excess, largest=False, sorted=True)
        # Everything tied with the threshold goes too, as in the trained behaviour.
        self.long.keep(usage > lowest[-1])
        self.prunings += 1

    # -- reading -------------------------------------------------------------------------------

    def read(self, key: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
        """Top-k readout for a frame's ``key, selection (1, CK, h, w)`` -> ``(1, 2, CV, h, w)``.

        Similarities and the softmax always run in float32, also under autocast: squared key
        distances overflow half precision.

        Also sets :attr:`last_match`, the frame's memory-match score in [0, 1]: the mean over
        the frame's positions of ``exp(s_max / CK)``, where ``s_max <= 0`` is the position's best
        similarity (minus the selection-weighted squared key distance, times shrinkage, over
        ``sqrt(CK)``) to any memory element -- the largest affinity of the readout before the
        softmax normalises it, taken to the power ``1/CK`` (per key channel, so that the score
        spreads over [0, 1] instead of sitting at 0). 1 means every position has an exact key
        match in memory; it falls as the frame's content moves away from anything remembered.
        It reuses the top-k scores the readout computes anyway: one exp over the positions.
        """
        with torch.autocast(key.device.type, enabled=False):
            return self._read(key, selection)

    def _read(self, key: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
        _, channels, height, width = key.shape
        positions = height * width
        query = query_operand(key.reshape(channels, positions), selection.reshape(channels, positions))
        operand, values = self._joined_memory()
        total = values.shape[0]
        top_k = min(self.config.top_k, total)
        usage = torch.zeros(total, dtype=torch.float32, device=key.device)
        block = max(1, self.config.readout_block_elements // total)
        out = values.new_empty(positions, values.shape[1])
        match = torch.zeros((), dtype=torch.float32, device=key.device)
        for begin in range(0, positions, block):
            stop = min(positions, begin + block)
            scores = query[begin:stop] @ operand
            top_scores, top_index = torch.topk(scores, k=top_k, dim=1, sorted=True)
            del scores
            match += (top_scores[:, 0] / channels).clamp(max=0).exp().sum()
            # No max subtraction: this is how the checkpoint was trained and evaluated. Where
            # that underflows (every top-k score below about -87: a key far from all memory,
            # likelier from half-precision keys) it would divide 0 by 0; there, and only there,
            # the max-subtracted softmax gives the weights instead.
            weights = top_scores.exp()
            sums = weights.sum(1, keepdim=True)
            usable = (sums > 0) & torch.isfinite(sums)
            weights = torch.where(usable, weights / sums, top_scores.softmax(dim=1))
            out[begin:stop] = weighted_rows(values, top_index, weights.to(values.dtype))
            usage.index_add_(0, top_index.reshape(-1), weights.reshape(-1))
        self.last_match = match / positions
        if self.config.enable_long_term:
            self.work.add_usage(usage[total - self.work.size:])
            if self.long.size:
                self.long.add_usage(usage[:self.long.size])
        return out.t().reshape(1, 2, -1, height, width)

    def _joined_memory(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Similarity operand ``(2*CK + 1, N)`` and values ``(N, CV_total)`` of [long; work]."""
        if self._joined is None:
            parts = [store for store in (self.long, self.work) if store.size > 0]
            operand = torch.cat([memory_operand(s.keys, s.shrinkage) for s in parts], 1)
            if len(parts) == 1:
                values = parts[0].values
            else:
                values = torch.cat([s.values for s in parts], 0)
                # The stores keep views of the joined copy, so values are held once.
                begin = 0
                for store in parts:
                    store.values = values[begin:begin + store.size]
                    begin += store.size
            self._joined = (operand, values)
        return self._joined

    @property
    def size(self) -> int:
        return self.work.size + self.long.size

    # -- saving and restoring ------------------------------------------------------------------

    STORES = ("work", "long")

    def state_tensors(self, prefix: str = "memory.") -> dict[str, torch.Tensor]:
        """Everything stored, as independent tensors keyed ``<prefix><store>.<field>``."""
        tensors: dict[str, torch.Tensor] = {}
        for name in self.STORES:
            tensors.update(getattr(self, name).state_tensors(f"{prefix}{name}."))
        if self.hidden is not None:
            tensors[f"{prefix}hidden"] = self.hidden.clone()
        return tensors

    def state_meta(self) -> dict:
        return {"elements_per_frame": self.elements_per_frame, "compressions": self.compressions,
                "prunings": self.prunings, "permanent_elements": self.permanent_elements}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict,
                   prefix: str = "memory.") -> None:
        """Restore what :meth:`state_tensors` and :meth:`state_meta` saved (same config)."""
        for name in self.STORES:
            getattr(self, name).load_state(tensors, f"{prefix}{name}.")
        hidden = tensors.get(f"{prefix}hidden")
        self.hidden = None if hidden is None else hidden.clone()
        self.elements_per_frame = meta["elements_per_frame"]
        self.compressions = meta["compressions"]
        self.prunings = meta["prunings"]
        self.permanent_elements = meta["permanent_elements"]
        self._joined = None
