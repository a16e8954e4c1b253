// Table 2's encoder ablation: one BiLSTM whose states every task shares, in place of the SRN.
local lib = import 'lib/common.libsonnet';

(import 'scierc_cascade_late.jsonnet') + {
  model+: lib.cascade_late(lib.shared_bilstm(lib.transformer_dim, 150) + {num_tasks: 3}, 300),
}
