// Table 2's bidirectional SRN under early fusion: each direction with half the units.
local lib = import 'lib/common.libsonnet';

(import 'scierc_cascade_early.jsonnet') + {
  model+: {encoder: lib.srn(lib.transformer_dim, 150, num_tasks=3) + {bidirectional: true}},
}
