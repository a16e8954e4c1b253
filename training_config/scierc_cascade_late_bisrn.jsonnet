// Table 2's bidirectional SRN: each direction with half the units, so the representations keep their size.
local lib = import 'lib/common.libsonnet';

(import 'scierc_cascade_late.jsonnet') + {
  model+: {encoder: lib.srn(lib.transformer_dim, 150, num_tasks=3) + {bidirectional: true}},
}
