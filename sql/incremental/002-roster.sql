-- The built-in model roster. Parameter schemas mirror udfs/cerebro_udfs/roster/*.py.
insert into cerebro.models (name, kind, entry_point, param_schema, description) values
('mlp', 'roster', 'mlp', '{
   "hidden":        {"type": "int_list", "default": [64]},
   "activation":    {"type": "choice", "values": ["relu", "tanh", "gelu", "elu", "sigmoid"], "default": "relu"},
   "dropout":       {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0},
   "optimizer":     {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"},
   "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": 0.001},
   "batch_size":    {"type": "int", "min": 1, "max": 65536, "default": 64}
 }'::jsonb,
 'multi-layer perceptron: hidden layer sizes, activation, dropout, optimizer, learning rate');
