// Table-SRN on SciERC: scierc_pfn.jsonnet with the two-task SRN encoder (Cascade-SRN paper, Table 6).
local lib = import 'lib/common.libsonnet';

(import 'scierc_pfn.jsonnet') + {model+: {encoder: lib.srn(lib.transformer_dim, num_tasks=2)}}
