using BenchmarkDotNet.Running;

// Speed targets live here (and in the side-by-side scripts beside this project), never in unit tests.
// Run: dotnet run -c Release --project benchmarks/DiskSnapshotEngine.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
