%% Channel handles. They are plain tuples so that they cross to Python as
%% arguments (`py:call(mod, worker, [Ch])') and back unchanged.

%% `counters' is an atomics array: the bytes queued (sent, not yet taken by
%% Python), the closed flag, and the largest message a send accepts (set when
%% the channel is made, from max_frame). Senders update and read it themselves,
%% so backpressure costs no message to the server.
-define(CH_SIZE, 1).
-define(CH_CLOSED, 2).
-define(CH_MAX_MESSAGE, 3).

-record(py_channel, {id :: pos_integer(),
                     server :: pid(),
                     counters :: atomics:atomics_ref(),
                     max_size :: pos_integer() | infinity}).

-record(py_byte_channel, {id :: pos_integer(),
                          server :: pid(),
                          counters :: atomics:atomics_ref(),
                          max_size :: pos_integer() | infinity}).
