using System.Text;
using System.Xml;
using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>
/// Loads and replaces settings files so that a crash leaves either the old or the new file, never a torn one:
/// write a temporary file in the same folder, fsync it, keep the old file as <c>NAME-prev</c> (VirtualBox's own
/// backup name for .vbox files), rename over the original (atomic on one file system), then fsync the folder so the rename is durable.
/// </summary>
public static class AtomicXmlFile
{
    /// <summary>Suffix of the backup copy of the previous version.</summary>
    public const string BackupSuffix = "-prev";

    /// <summary>Loads an XML file (comments and processing instructions kept).</summary>
    /// <exception cref="DiskImageException">FileNotFound, InvalidFormat for XML that does not parse, Io.</exception>
    public static XDocument Load(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            // Settings files are small; refuse anything that is clearly not one instead of reading gigabytes.
            if (stream.Length > 64L << 20)
                throw new DiskImageException(ErrorKind.InvalidFormat, $"{stream.Length} bytes is too large for a settings file", path);
            var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null };
            using var reader = XmlReader.Create(stream, settings);
            return XDocument.Load(reader, LoadOptions.None);
        }
        catch (FileNotFoundException e) { throw new DiskImageException(ErrorKind.FileNotFound, "no such file", path, inner: e); }
        catch (DirectoryNotFoundException e) { throw new DiskImageException(ErrorKind.FileNotFound, "no such folder", path, inner: e); }
        catch (XmlException e) { throw new DiskImageException(ErrorKind.InvalidFormat, $"not well-formed XML at line {e.LineNumber}: {e.Message}", path, inner: e); }
        catch (UnauthorizedAccessException e) { throw new DiskImageException(ErrorKind.Io, e.Message, path, inner: e); }
        catch (IOException e) when (e is not FileNotFoundException) { throw new DiskImageException(ErrorKind.Io, e.Message, path, inner: e); }
    }

    /// <summary>Writes <paramref name="doc"/> to <paramref name="path"/> atomically, keeping any previous file as <c>path-prev</c>.</summary>
    /// <param name="doc">The document.</param>
    /// <param name="path">Target file.</param>
    /// <param name="mustNotExist">True to refuse (AlreadyExists) when the target exists, for new machines.</param>
    /// <exception cref="DiskImageException">AlreadyExists, Io, DiskFull.</exception>
    public static void Save(XDocument doc, string path, bool mustNotExist = false)
    {
        path = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(path)!;
        if (mustNotExist && File.Exists(path))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the settings file already exists; choose another name or folder", path);
        var tmp = System.IO.Path.Combine(dir, "." + System.IO.Path.GetFileName(path) + ".tmp-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var settings = new XmlWriterSettings
            {
                Indent = true,
                IndentChars = "  ",
                Encoding = EncodingOf(doc),
                NewLineHandling = NewLineHandling.Entitize,
                // The declaration is written as the file had it (XmlWriter would always add its own encoding spelling).
                OmitXmlDeclaration = true,
            };
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                var decl = doc.Declaration ?? new XDeclaration("1.0", null, null);
                var declText = "<?xml version=\"" + (decl.Version ?? "1.0") + "\""
                    + (decl.Encoding is null ? "" : " encoding=\"" + decl.Encoding + "\"")
                    + (decl.Standalone is null ? "" : " standalone=\"" + decl.Standalone + "\"") + "?>\n";
                fs.Write(Encoding.ASCII.GetBytes(declText)); // an XmlWriter would drop or respell it
                using (var w = XmlWriter.Create(fs, settings))
                {
                    foreach (var node in doc.Nodes()) node.WriteTo(w);
                }
                fs.Flush(flushToDisk: true);
            }
            if (File.Exists(path))
            {
                if (mustNotExist) throw new DiskImageException(ErrorKind.AlreadyExists, "the settings file appeared while writing", path);
                var backup = path + BackupSuffix;
                File.Copy(path, backup, overwrite: true);
                using (var b = new FileStream(backup, FileMode.Open, FileAccess.ReadWrite)) b.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: !mustNotExist);
            // POSIX makes the rename durable only once the folder is fsynced.
            DurableFiles.SyncDirectoryOf(path);
        }
        catch (IOException e)
        {
            DurableFiles.TryDelete(tmp);
            const int ENOSPC = 28;
            var kind = (e.HResult & 0xFFFF) == ENOSPC ? ErrorKind.DiskFull : ErrorKind.Io;
            throw new DiskImageException(kind, $"could not write the settings file: {e.Message}", path, inner: e);
        }
        catch (UnauthorizedAccessException e)
        {
            DurableFiles.TryDelete(tmp);
            throw new DiskImageException(ErrorKind.Io, $"could not write the settings file: {e.Message}", path, inner: e);
        }
        catch
        {
            DurableFiles.TryDelete(tmp);
            throw;
        }
    }

    /// <summary>The encoding the declaration names (old libvirt-written files say ISO-8859-1), UTF-8 without BOM otherwise.</summary>
    private static Encoding EncodingOf(XDocument doc)
    {
        var name = doc.Declaration?.Encoding;
        if (string.Equals(name, "ISO-8859-1", StringComparison.OrdinalIgnoreCase) || string.Equals(name, "latin1", StringComparison.OrdinalIgnoreCase))
            return Encoding.Latin1;
        return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
    }
}
