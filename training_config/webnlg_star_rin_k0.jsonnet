// RIN's K ablation on WebNLG*: 0 round(s) of interaction (the paper's BiLSTM_s baseline).
(import 'webnlg_star_rin.jsonnet') + {model+: {rounds: 0}}
