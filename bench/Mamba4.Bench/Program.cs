Console.WriteLine("mamba4 bench: no benchmarks yet");
