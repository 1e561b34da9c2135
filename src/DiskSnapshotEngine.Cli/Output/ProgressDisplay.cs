using DiskSnapshotEngine.Operations;
using Spectre.Console;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>
/// Shows a progress bar for a long operation on stderr when stderr is a terminal, and nothing otherwise (pipes,
/// files, CI logs stay clean; stdout only ever carries the result) or with <c>--quiet</c>. The operation reports
/// through the <see cref="IProgress{T}"/> it is given.
/// </summary>
internal static class ProgressDisplay
{
    /// <summary>Runs <paramref name="work"/> with a progress sink when progress is to be shown (see the type).</summary>
    public static Task<T> RunAsync<T>(CliContext context, string title, Func<IProgress<OperationProgress>?, Task<T>> work) =>
        // Not async, and the bar in a method of its own: without a bar Spectre.Console is not even loaded (start-up time).
        context.Quiet || !context.Host.ErrorIsTerminal ? work(null) : WithBarAsync(context, title, work);

    private static async Task<T> WithBarAsync<T>(CliContext context, string title, Func<IProgress<OperationProgress>?, Task<T>> work)
    {
        // Interactive because stderr is a terminal, whatever stdin is (write --input - reads a pipe).
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(context.Error), Interactive = InteractionSupport.Yes });
        return await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async progressContext =>
            {
                var task = progressContext.AddTask(title, maxValue: 1);
                var sink = new Sink(report =>
                {
                    task.MaxValue = Math.Max(1, report.Total);
                    task.Value = Math.Min(report.Done, task.MaxValue);
                    task.Description = $"{title}: {report.Phase}";
                });
                var result = await work(sink).ConfigureAwait(false);
                task.Value = task.MaxValue;
                task.StopTask();
                return result;
            }).ConfigureAwait(false);
    }

    /// <summary>As above; <paramref name="show"/> = false runs without progress (the form verbs written before progress moved to stderr use).</summary>
    public static Task<T> RunAsync<T>(CliContext context, string title, bool show, Func<IProgress<OperationProgress>?, Task<T>> work) =>
        show ? RunAsync(context, title, work) : work(null);

    /// <summary>Runs a report without a result.</summary>
    public static Task RunAsync(CliContext context, string title, Func<IProgress<OperationProgress>?, Task> work) =>
        RunAsync<bool>(context, title, async p => { await work(p).ConfigureAwait(false); return true; });

    /// <inheritdoc cref="RunAsync{T}(CliContext, string, bool, Func{IProgress{OperationProgress}?, Task{T}})"/>
    public static Task RunAsync(CliContext context, string title, bool show, Func<IProgress<OperationProgress>?, Task> work) =>
        show ? RunAsync(context, title, work) : work(null);

    // Progress<T> would post to the thread pool and reorder reports; the bar only needs the latest value, now.
    private sealed class Sink(Action<OperationProgress> onReport) : IProgress<OperationProgress>
    {
        public void Report(OperationProgress value) => onReport(value);
    }
}
