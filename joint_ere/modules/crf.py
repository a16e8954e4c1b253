"""
The linear-chain CRF's algorithms over whole batches: the log-likelihood of gold tag paths for training and
Viterbi decoding. The parameters stay in allennlp-light's `ConditionalRandomField` (``transitions``,
``start_transitions``, ``end_transitions``), so archives keep their weight names; only the arithmetic is here.

allennlp-light differentiates its forward algorithm through autograd: about twenty recorded operations per
time step, which made the CRF about a tenth of a CoNLL04 training step on a CPU. Here the gold path score is one
vectorised expression, and the log-partition function is an autograd `Function` whose backward runs the
backward algorithm and returns the marginals, which are its gradients:

    ∂ log Z / ∂ x[t, j]   = p(y_t = j)
    ∂ log Z / ∂ A[i, j]   = Σ_t p(y_{t-1} = i, y_t = j)
    ∂ log Z / ∂ start[j]  = p(y_0 = j),    ∂ log Z / ∂ end[j] = p(y_last = j)

The tests check values and gradients against allennlp-light's CRF. As there, the loss uses the unconstrained
transitions; the constraints of the tag encoding apply in decoding.
"""
import torch


class _LogPartition(torch.autograd.Function):
    """log Z for every sentence of a batch: (B, T, K) scores, (B, T) mask (a prefix of each row) -> (B,).

    The recursions run in probability space, each step rescaled to sum to one (its log kept aside), in float64,
    whose range no score difference of a trained model comes near: a step is then a (B, K) × (K, K) product and
    four cheap operations, where log space needs a log-sum-exp of about ten kernels.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor,  # type: ignore[override]
                start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        ctx.dtypes = (logits.dtype, transitions.dtype)
        scores = logits.transpose(0, 1).double()  # (T, B, K)
        valid = mask.transpose(0, 1).unsqueeze(2)  # (T, B, 1)
        transitions, start, end = transitions.double(), start.double(), end.double()
        # exp of every score less its maximum, so that nothing overflows; the maxima are added back in log Z.
        emit_max = scores.amax(2, keepdim=True)
        emits = torch.exp(scores - emit_max)
        move_max, start_max, end_max = transitions.max(), start.max(), end.max()
        moves = torch.exp(transitions - move_max)
        ends = torch.exp(end - end_max)
        alpha = torch.exp(start - start_max) * emits[0]
        norm = alpha.sum(1, keepdim=True)
        alphas, norms = [alpha / norm], [norm]
        for emit, step in zip(emits.unbind(0)[1:], valid.unbind(0)[1:]):
            # alpha_t(j) ∝ Σ_i alpha_{t-1}(i) exp(A[i, j]) exp(x_t(j)); past a sentence's end it stays put.
            alpha = torch.mm(alphas[-1], moves).mul_(emit)
            norm = alpha.sum(1, keepdim=True)
            alphas.append(torch.where(step, alpha.div_(norm), alphas[-1]))
            norms.append(norm)
        alphas = torch.stack(alphas)
        log_z = (((emit_max + torch.stack(norms).log()) * valid).sum((0, 2)) + (alphas[-1] * ends).sum(1).log()
                 + start_max + end_max + move_max * (valid.sum((0, 2)) - 1))
        ctx.save_for_backward(emits, valid, moves, ends, alphas)
        return log_z.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_log_z: torch.Tensor):  # type: ignore[override]
        emits, valid, moves, ends, alphas = ctx.saved_tensors
        backward_moves = moves.t()
        beta = ends.expand_as(alphas[0])
        betas = [beta]
        for emit, step in zip(reversed(emits.unbind(0)[1:]), reversed(valid.unbind(0)[1:])):
            # beta_{t-1}(i) ∝ Σ_j exp(A[i, j]) exp(x_t(j)) beta_t(j); a sentence's last token has exp(end).
            beta = torch.mm(emit * betas[-1], backward_moves)
            betas.append(torch.where(step, beta.div_(beta.sum(1, keepdim=True)), betas[-1]))
        betas = torch.stack(betas[::-1])
        grad_log_z = grad_log_z.double().unsqueeze(1)  # (B, 1)
        weight = valid * grad_log_z  # (T, B, 1)
        # The marginals, normalised per sentence and step (alpha and beta are each known up to a factor):
        #   p(y_t = j) ∝ alpha_t(j) beta_t(j)
        #   p(y_{t-1} = i, y_t = j) ∝ alpha_{t-1}(i) exp(A[i, j]) exp(x_t(j)) beta_t(j)
        nodes = alphas * betas
        nodes = nodes * (weight / nodes.sum(2, keepdim=True))
        ahead = emits[1:] * betas[1:]  # (T - 1, B, K)
        behind = alphas[:-1] * (weight[1:] / (alphas[:-1] * torch.matmul(ahead, backward_moves)).sum(2, keepdim=True))
        edges = moves * (behind.reshape(-1, moves.size(0)).t() @ ahead.reshape(-1, moves.size(0)))
        last = alphas[-1] * ends
        last = last * (grad_log_z / last.sum(1, keepdim=True))  # alphas[-1] is each sentence's last token's
        logits_dtype, dtype = ctx.dtypes
        return (nodes.transpose(0, 1).to(logits_dtype), None, edges.to(dtype), nodes[0].sum(0).to(dtype),
                last.sum(0).to(dtype))


def crf_log_likelihood(logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor,
                       start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """log p(tags | logits) per sentence, (B,): the gold path's score minus log Z. Every row of ``mask`` must be a
    prefix of ones with at least one."""
    dtype = torch.promote_types(logits.dtype, torch.float32)  # float16 / bfloat16 scores under autocast
    logits, transitions, start, end = (x.to(dtype) for x in (logits, transitions, start, end))
    mask = mask.bool()
    weights = mask.to(dtype)
    emitted = (logits.gather(2, tags.unsqueeze(2)).squeeze(2) * weights).sum(1)
    moved = (transitions[tags[:, :-1], tags[:, 1:]] * weights[:, 1:]).sum(1)
    last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
    score = start[tags[:, 0]] + emitted + moved + end[last]
    return score - _LogPartition.apply(logits, mask, transitions, start, end)


def batched_viterbi(logits: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor,
                    start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Best tags, (B, T), for a whole batch at once; padded positions hold 0."""
    batch, length, num_tags = logits.shape
    mask = mask.bool()
    score = start + logits[:, 0]
    identity = torch.arange(num_tags, device=logits.device).expand(batch, num_tags)
    backpointers = []
    for t in range(1, length):
        best, previous = (score.unsqueeze(2) + transitions).max(dim=1)
        step = mask[:, t].unsqueeze(1)
        score = torch.where(step, best + logits[:, t], score)
        # Past a sentence's end the path stays put, so the end transition applies to its last real tag.
        backpointers.append(torch.where(step, previous, identity))
    last = (score + end).argmax(dim=1)
    tags = [last]
    for pointers in reversed(backpointers):
        last = pointers.gather(1, last.unsqueeze(1)).squeeze(1)
        tags.append(last)
    tags.reverse()
    return torch.stack(tags, dim=1) * mask
