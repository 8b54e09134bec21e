%% The Erlang side of aemp's local message figures (see ../erlang.rs).
%%
%% `erl -noshell -pa DIR -run aemp_bench main` prints `READY Schedulers`,
%% then answers each line read from stdin with one number:
%%   send N      -> messages per second: one process sends N messages
%%                  {tag, I} to another that counts them;
%%   pingpong N  -> microseconds per round trip: two processes bounce a
%%                  message ({ping, Pid} / {pong, Pid}) N times;
%%   quit (or end of input) -> halts.
%% The messages are shaped like aemp's msg!["tag", i]: a 2-tuple of an
%% atom tag and a number (or a pid, as aemp's ping-pong carries a port ID).
-module(aemp_bench).
-export([main/0]).

main() ->
    io:format("READY ~b~n", [erlang:system_info(schedulers_online)]),
    serve().

serve() ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(1);
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["send", N] -> answer(run(fun() -> send(list_to_integer(N)) end));
                ["pingpong", N] -> answer(run(fun() -> pingpong(list_to_integer(N)) end));
                _ -> halt(0)
            end,
            serve()
    end.

answer(X) -> io:format("~.6f~n", [float(X)]).

%% Runs F in a fresh process (an empty mailbox, like a fresh aemp port).
run(F) ->
    Me = self(),
    spawn(fun() -> Me ! {result, F()} end),
    receive {result, X} -> X end.

now_ns() -> erlang:monotonic_time(nanosecond).

send(N) ->
    Me = self(),
    Counter = spawn(fun() -> count(N, Me) end),
    T0 = now_ns(),
    send_loop(Counter, 0, N),
    receive counted -> ok end,
    N / ((now_ns() - T0) / 1.0e9).

send_loop(_, N, N) -> ok;
send_loop(To, I, N) ->
    To ! {tag, I},
    send_loop(To, I + 1, N).

count(0, Parent) -> Parent ! counted;
count(K, Parent) ->
    receive {tag, _} -> count(K - 1, Parent) end.

pingpong(Rounds) ->
    Pong = spawn(fun pong/0),
    T0 = now_ns(),
    ping(Pong, Rounds),
    Took = now_ns() - T0,
    Pong ! stop,
    Took / 1000 / Rounds.

ping(_, 0) -> ok;
ping(Pong, K) ->
    Pong ! {ping, self()},
    receive {pong, _} -> ping(Pong, K - 1) end.

pong() ->
    receive
        {ping, From} ->
            From ! {pong, self()},
            pong();
        stop -> ok
    end.
