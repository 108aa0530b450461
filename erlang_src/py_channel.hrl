%% Channel handles. They are plain tuples so that they cross to Python as
%% arguments (`py:call(mod, worker, [Ch])') and back unchanged.

%% `counters' is an atomics array: the bytes queued (sent, not yet taken by
%% Python) and the closed flag. Senders update it themselves, so backpressure
%% costs no message to the server.
-define(CH_SIZE, 1).
-define(CH_CLOSED, 2).

-record(py_channel, {id :: pos_integer(),
                     server :: pid(),
                     counters :: atomics:atomics_ref(),
                     max_size :: pos_integer() | infinity}).

-record(py_byte_channel, {id :: pos_integer(),
                          server :: pid(),
                          counters :: atomics:atomics_ref(),
                          max_size :: pos_integer() | infinity}).
