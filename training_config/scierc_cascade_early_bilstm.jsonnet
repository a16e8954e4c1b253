// Table 2's encoder ablation under early fusion: one BiLSTM whose states every task shares, in place of the SRN.
local lib = import 'lib/common.libsonnet';

(import 'scierc_cascade_early.jsonnet') + {
  model+: {encoder: lib.shared_bilstm(lib.transformer_dim, 150) + {num_tasks: 3}},
}
