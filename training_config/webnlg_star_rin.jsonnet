// RIN (Sun et al. 2020) on WebNLG* (CasRel's partial-match split: each argument is an entity's last word),
// GloVe 50d + character CNN, K = 3 rounds of interaction; selected on the validation split by partial match,
// then scored on test (the benchmark's protocol; these splits are public and not held out).
//   JOINT_ERE_DATA=../shared/data GLOVE_50D=... allennlp train training_config/webnlg_star_rin.jsonnet -s runs/webnlg_star_rin
// K: training_config/webnlg_star_rin_k{0,1,5}.jsonnet (K = 0 is the paper's BiLSTM_s baseline).
local lib = import 'lib/common.libsonnet';

lib.base + lib.casrel('webnlg_star', 'partial') + {
  model: lib.rin(50 + 50, rounds=3),
}
