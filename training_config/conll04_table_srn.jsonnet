// Table-SRN (Cascade-SRN paper, Table 6): conll04_pfn.jsonnet with the two-task SRN encoder.
local lib = import 'lib/common.libsonnet';

(import 'conll04_pfn.jsonnet') + {model+: {encoder: lib.srn(lib.transformer_dim, num_tasks=2)}}
