// Ablation (Crone 2020): no task-specific layers; the same four BiLSTM layers' depth all shared.
local lib = import 'lib/common.libsonnet';
(import 'conll04.jsonnet') + {model+: lib.crone(50 + 50, hidden=100, shared=3, ner=0, re=0)}
