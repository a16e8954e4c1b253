// The BiLSTM ablation: conll04_pfn.jsonnet with one BiLSTM whose states every task shares.
local lib = import 'lib/common.libsonnet';

(import 'conll04_pfn.jsonnet') + {model+: {encoder: lib.shared_bilstm(lib.transformer_dim)}}
