using Mamba4.Bench;

switch (args.Length > 0 ? args[0] : "")
{
    case "scan": ScanBench.Run(); break;
    default: Console.WriteLine("usage: Mamba4.Bench <name>   (scan)"); return 1;
}
return 0;
