using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using TwinSeal.Crypto;

namespace TwinSeal.Kms.Store;

/// <summary>
/// A KEK root whose AES-256 key lives in a PKCS#11 token (an HSM, or SoftHSM2 in tests) and never leaves it: every KEK is
/// sealed and unsealed by AES-256-GCM computed inside the token.
/// </summary>
/// <remarks>
/// <para>
/// <b>Root key.</b> A secret key object found by <see cref="Pkcs11RootOptions.KeyLabel"/>. When missing it is generated in
/// the token with <c>CKA_TOKEN</c>, <c>CKA_PRIVATE</c>, <c>CKA_SENSITIVE</c>, <c>CKA_ENCRYPT</c> and <c>CKA_DECRYPT</c> true,
/// <c>CKA_EXTRACTABLE</c>, <c>CKA_WRAP</c>, <c>CKA_UNWRAP</c>, <c>CKA_SIGN</c>, <c>CKA_VERIFY</c> and <c>CKA_DERIVE</c> false,
/// <c>CKA_VALUE_LEN</c> 32. A key found under the label must be an AES-256 token object that is private, sensitive, not
/// extractable and allowed to encrypt and decrypt, and must be the only secret key with that label; otherwise
/// <see cref="Open"/> refuses to start rather than seal KEKs under a key that could be exported or confused with another.
/// </para>
/// <para>
/// <b>Sealed KEK format</b> (version 1): <c>version (1 byte, 0x01) ‖ IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes)</c>, where
/// the IV is fresh from <see cref="RandomNumberGenerator"/> for every seal and <c>ciphertext ‖ tag</c> is exactly what the
/// token's <c>CKM_AES_GCM</c> returns (128-bit tag, AAD = the key-id binding the caller passes). A 32-byte KEK therefore
/// seals to 61 bytes. The version byte lets a later format (another mechanism, a token-generated IV) coexist with this one.
/// </para>
/// <para>
/// <b>Sessions.</b> PKCS#11 logs in the whole application, not a session, and logs it out again when its last session
/// closes; a session, on the other hand, may be used by one thread at a time. So the root keeps one read-write "anchor"
/// session open for its lifetime that carries the login (and created the key), and runs each seal or unseal on a
/// read-only session borrowed from a small pool, opening one only when all are busy, capped at
/// <see cref="MaxSessions"/> because hardware tokens limit sessions per application. Read-only sessions are enough for
/// encryption with a private token key once the application is logged in, on SoftHSM2 as on hardware tokens.
/// Initialisation and login are per process too, so roots opened on the same module share one loaded module and one
/// login per token (reference counted): disposing one root never finalises the module or logs out under another.
/// </para>
/// <para>
/// <b>Plaintext.</b> The KEK is handed to the token from a pinned array that is zeroed at once; on the way back the token
/// decrypts straight into a pinned array of ours (one <c>C_Decrypt</c> through Pkcs11Interop's low-level API) that is
/// copied into a <see cref="SecretBytes"/> and zeroed. The high-level <c>Decrypt</c> is avoided because it allocates and
/// may resize its own array, which would leave copies of the KEK that nobody wipes.
/// </para>
/// </remarks>
public sealed class Pkcs11KekRoot : KekRoot
{
    /// <summary>First byte of every sealed KEK in the current format.</summary>
    public const byte FormatVersion = 1;

    /// <summary>Length of the GCM IV in bytes.</summary>
    public const int IvLength = 12;

    /// <summary>Length of the GCM tag in bytes.</summary>
    public const int TagLength = 16;

    /// <summary>Length of the root key in bytes (AES-256).</summary>
    public const int RootKeyLength = 32;

    /// <summary>The most sessions one root keeps open for seal and unseal, besides the anchor session.</summary>
    internal static readonly int MaxSessions = Math.Clamp(Environment.ProcessorCount, 2, 16);

    private const int HeaderLength = 1 + IvLength;

    // Guards the process-wide module and login tables and the resolver flag; only opening and disposing roots take it.
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, Module> Modules = new(StringComparer.Ordinal);
    private static bool _nativeResolverSet;

    private readonly Module _module;
    private readonly TokenLogin _login;
    private readonly ISlot _slot;
    private readonly IObjectHandle _key;
    private readonly string _tokenLabel;
    private readonly string _keyLabel;
    private readonly ConcurrentBag<ISession> _idle = [];
    private readonly SemaphoreSlim _permits = new(MaxSessions, MaxSessions);
    private int _disposed;

    private Pkcs11KekRoot(Module module, TokenLogin login, ISlot slot, IObjectHandle key, Pkcs11RootOptions options)
    {
        _module = module;
        _login = login;
        _slot = slot;
        _key = key;
        _tokenLabel = options.TokenLabel;
        _keyLabel = options.KeyLabel;
    }

    /// <summary>
    /// Loads the PKCS#11 module, logs in to the token labelled <see cref="Pkcs11RootOptions.TokenLabel"/> as its user, and
    /// finds the root key (creating it when missing).
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The module cannot be loaded, no (or more than one) token has the label, the PIN is refused, or the key found under the
    /// label is unfit to be the root (see the remarks of <see cref="Pkcs11KekRoot"/>). The message says which; it never
    /// contains the PIN.
    /// </exception>
    public static Pkcs11KekRoot Open(Pkcs11RootOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.LibraryPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.TokenLabel);
        ArgumentException.ThrowIfNullOrEmpty(options.UserPin);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.KeyLabel);

        UseSystemDynamicLoader();
        lock (Gate)
        {
            var module = Module.Acquire(options.LibraryPath);
            TokenLogin? login = null;
            try
            {
                var slot = FindSlot(module, options);
                login = module.AcquireLogin(slot, options);
                var key = FindOrCreateKey(module.Library.Factories, login.Anchor, options);
                return new Pkcs11KekRoot(module, login, slot, key, options);
            }
            catch
            {
                if (login is not null) module.ReleaseLogin(login);
                module.Release();
                throw;
            }
        }
    }

    /// <summary>
    /// Lets Pkcs11Interop find <c>dlopen</c> on current Linux: it imports it from "libdl", a name only the glibc development
    /// package provides since glibc 2.34 merged libdl into libc; the runtime library is <c>libdl.so.2</c>. Idempotent;
    /// <see cref="Open"/> calls it, and so must anything else in this process that loads a module through Pkcs11Interop first.
    /// </summary>
    internal static void UseSystemDynamicLoader()
    {
        lock (Gate)
        {
            if (_nativeResolverSet) return;
            _nativeResolverSet = true;
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, ResolveDynamicLoader);
            }
            catch (InvalidOperationException)
            {
                // The host already installed a resolver for Pkcs11Interop; it knows its platform better than we do.
            }
        }
    }

    private static IntPtr ResolveDynamicLoader(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != "libdl" || !OperatingSystem.IsLinux()) return IntPtr.Zero;
        foreach (var candidate in (ReadOnlySpan<string>)["libdl.so.2", "libc.so.6"])
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle)) return handle;
        // Fall back to the default probing (musl, or a system that does ship libdl.so).
        return IntPtr.Zero;
    }

    /// <inheritdoc />
    public override string Description => $"PKCS#11 token '{_tokenLabel}' key '{_keyLabel}'";

    /// <inheritdoc />
    protected override byte[] SealMaterial(ReadOnlySpan<byte> kek, byte[] associatedData)
    {
        ArgumentNullException.ThrowIfNull(associatedData);
        if (kek.IsEmpty) throw new ArgumentException("There is no KEK to seal.", nameof(kek));
        var iv = RandomNumberGenerator.GetBytes(IvLength);
        // Pinned so the GC cannot leave a copy of the KEK behind before the array is zeroed.
        var plaintext = GC.AllocateArray<byte>(kek.Length, pinned: true);
        try
        {
            kek.CopyTo(plaintext);
            var sealedBody = UseSession("seal a KEK", session =>
            {
                using var parameters = _module.Library.Factories.MechanismParamsFactory.CreateCkGcmParams(iv, IvLength * 8, associatedData, TagLength * 8);
                using var mechanism = _module.Library.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
                return session.Encrypt(mechanism, _key, plaintext);
            });
            // A module that ignored the tag length would produce blobs this class cannot open again; better to fail now.
            if (sealedBody.Length != kek.Length + TagLength)
                throw new CryptographicException($"The PKCS#11 token '{_tokenLabel}' returned {sealedBody.Length} bytes for a {kek.Length}-byte KEK under CKM_AES_GCM; expected {kek.Length + TagLength}.");
            var result = new byte[HeaderLength + sealedBody.Length];
            result[0] = FormatVersion;
            iv.CopyTo(result, 1);
            sealedBody.CopyTo(result, HeaderLength);
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <inheritdoc />
    protected override SecretBytes OpenMaterial(ReadOnlySpan<byte> sealedKek, byte[] associatedData)
    {
        ArgumentNullException.ThrowIfNull(associatedData);
        if (sealedKek.Length < HeaderLength + TagLength + 1)
            throw new CryptographicException($"The sealed KEK is {sealedKek.Length} bytes, too short for the PKCS#11 root's format (at least {HeaderLength + TagLength + 1}).");
        if (sealedKek[0] != FormatVersion)
            throw new CryptographicException($"The sealed KEK has format version {sealedKek[0]}; the PKCS#11 root reads version {FormatVersion}. It was not sealed by a PKCS#11 root, or by a newer TwinSeal.");
        var iv = sealedKek.Slice(1, IvLength).ToArray();
        var body = sealedKek[HeaderLength..].ToArray();
        var plaintext = GC.AllocateArray<byte>(body.Length, pinned: true);
        try
        {
            var length = UseSession("unseal a KEK", session =>
            {
                using var parameters = _module.Library.Factories.MechanismParamsFactory.CreateCkGcmParams(iv, IvLength * 8, associatedData, TagLength * 8);
                using var mechanism = _module.Library.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
                var result = _module.Direct.Decrypt(session.SessionId, mechanism, _key.ObjectId, body, plaintext, out var written);
                // Whatever went wrong, this session may still hold a decryption operation; a fresh one is cheap.
                if (result != CKR.CKR_OK) throw new SessionSpoiledException(result);
                return written;
            }, result => new CryptographicException(
                $"The PKCS#11 token '{_tokenLabel}' could not unseal the KEK with root key '{_keyLabel}' ({result}): the sealed KEK was altered, " +
                "is presented under another key id, was sealed by another root key, or the token failed."));
            if (length != body.Length - TagLength)
                throw new CryptographicException($"The PKCS#11 token '{_tokenLabel}' returned {length} bytes of KEK for {body.Length} sealed bytes; expected {body.Length - TagLength}.");
            return SecretBytes.CopyFrom(plaintext.AsSpan(0, length));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>
    /// Runs <paramref name="operation"/> on a pooled session, returning the session to the pool only if the operation
    /// succeeded; token errors become <see cref="CryptographicException"/>s naming <paramref name="what"/>.
    /// </summary>
    private T UseSession<T>(string what, Func<ISession, T> operation, Func<CKR, Exception>? onSpoiled = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        _permits.Wait();
        ISession? session = null;
        var healthy = false;
        try
        {
            // Dispose takes every permit before it closes anything, so a caller that got one sees the token still open.
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (!_idle.TryTake(out session)) session = _slot.OpenSession(SessionType.ReadOnly);
            var result = operation(session);
            healthy = true;
            return result;
        }
        catch (SessionSpoiledException e)
        {
            throw onSpoiled?.Invoke(e.Result) ?? new CryptographicException($"The PKCS#11 token '{_tokenLabel}' failed to {what} with root key '{_keyLabel}' ({e.Result}).");
        }
        catch (Pkcs11Exception e)
        {
            throw new CryptographicException($"The PKCS#11 token '{_tokenLabel}' failed to {what} with root key '{_keyLabel}' ({e.RV} in {e.Method}).", e);
        }
        finally
        {
            if (session is not null)
            {
                if (healthy) _idle.Add(session);
                else CloseQuietly(session);
            }
            _permits.Release();
        }
    }

    /// <summary>Closes the sessions, logs out when no other root in this process uses the token, and unloads the module when none uses it.</summary>
    protected override void Dispose(bool disposing)
    {
        if (!disposing || Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // Wait for in-flight seals and unseals: unloading the module under them would call into unmapped code.
        for (var i = 0; i < MaxSessions; i++) _permits.Wait();
        try
        {
            while (_idle.TryTake(out var session)) CloseQuietly(session);
            lock (Gate)
            {
                _module.ReleaseLogin(_login);
                _module.Release();
            }
        }
        finally
        {
            // Callers blocked on a permit wake up and find the root disposed.
            _permits.Release(MaxSessions);
        }
    }

    private static ISlot FindSlot(Module module, Pkcs11RootOptions options)
    {
        List<ISlot> slots;
        try
        {
            slots = module.Library.GetSlotList(SlotsType.WithTokenPresent);
        }
        catch (Pkcs11Exception e)
        {
            throw new InvalidOperationException($"The PKCS#11 module '{options.LibraryPath}' cannot list its tokens ({e.RV}).", e);
        }
        var seen = new List<string>();
        var matches = new List<ISlot>();
        foreach (var slot in slots)
        {
            string label;
            try
            {
                var info = slot.GetTokenInfo();
                // An uninitialised token (SoftHSM2 always offers one) has no label yet and cannot hold the root.
                if (!info.TokenFlags.TokenInitialized) continue;
                label = info.Label;
            }
            catch (Pkcs11Exception)
            {
                // A token that cannot describe itself (removed meanwhile) cannot be ours either.
                continue;
            }
            seen.Add(label);
            if (string.Equals(label, options.TokenLabel, StringComparison.Ordinal)) matches.Add(slot);
        }
        if (matches.Count == 1) return matches[0];
        if (matches.Count > 1)
            throw new InvalidOperationException($"{matches.Count} PKCS#11 tokens in module '{options.LibraryPath}' have the label '{options.TokenLabel}'; give the root's token a unique label.");
        var present = seen.Count == 0 ? "it reports no initialised tokens" : "it has " + string.Join(", ", seen.Select(l => $"'{l}'"));
        throw new InvalidOperationException($"No PKCS#11 token labelled '{options.TokenLabel}' in module '{options.LibraryPath}': {present}.");
    }

    private static IObjectHandle FindOrCreateKey(Pkcs11InteropFactories factories, ISession session, Pkcs11RootOptions options)
    {
        var where = $"PKCS#11 token '{options.TokenLabel}'";
        try
        {
            var found = FindByLabel(factories, session, options.KeyLabel);
            if (found.Count == 0)
            {
                GenerateRootKey(factories, session, options.KeyLabel);
                found = FindByLabel(factories, session, options.KeyLabel);
                if (found.Count > 1)
                    throw new InvalidOperationException($"{found.Count} secret keys labelled '{options.KeyLabel}' appeared in {where} while this KMS created one; " +
                        "another KMS probably created the root at the same moment. Keep the key whose KEKs are in use, delete the others, and start again.");
            }
            if (found.Count > 1)
                throw new InvalidOperationException($"{found.Count} secret keys in {where} have the label '{options.KeyLabel}'; the KMS cannot tell which one seals its KEKs. " +
                    "Delete or relabel all but the root key.");
            if (found.Count == 0)
                throw new InvalidOperationException($"The root key '{options.KeyLabel}' was created in {where} but cannot be found again.");
            CheckRootKey(session, found[0], options.KeyLabel, where);
            return found[0];
        }
        catch (Pkcs11Exception e)
        {
            throw new InvalidOperationException($"Cannot find or create the root key '{options.KeyLabel}' in {where} ({e.RV} in {e.Method}).", e);
        }
    }

    private static List<IObjectHandle> FindByLabel(Pkcs11InteropFactories factories, ISession session, string keyLabel)
    {
        // Search by class and label only, so a non-AES key under the label is refused instead of silently joined by an AES one.
        var template = new List<IObjectAttribute>
        {
            factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, keyLabel),
        };
        try
        {
            return session.FindAllObjects(template);
        }
        finally
        {
            foreach (var a in template) a.Dispose();
        }
    }

    private static void GenerateRootKey(Pkcs11InteropFactories factories, ISession session, string keyLabel)
    {
        var f = factories.ObjectAttributeFactory;
        var template = new List<IObjectAttribute>
        {
            f.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            f.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            f.Create(CKA.CKA_LABEL, keyLabel),
            f.Create(CKA.CKA_VALUE_LEN, (ulong)RootKeyLength),
            f.Create(CKA.CKA_TOKEN, true),
            f.Create(CKA.CKA_PRIVATE, true),
            f.Create(CKA.CKA_SENSITIVE, true),
            f.Create(CKA.CKA_EXTRACTABLE, false),
            f.Create(CKA.CKA_ENCRYPT, true),
            f.Create(CKA.CKA_DECRYPT, true),
            // Every other use is an export path in disguise (wrapping other keys out, deriving an extractable child) or
            // simply not needed.
            f.Create(CKA.CKA_WRAP, false),
            f.Create(CKA.CKA_UNWRAP, false),
            f.Create(CKA.CKA_SIGN, false),
            f.Create(CKA.CKA_VERIFY, false),
            f.Create(CKA.CKA_DERIVE, false),
        };
        try
        {
            using var mechanism = factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN);
            session.GenerateKey(mechanism, template);
        }
        finally
        {
            foreach (var a in template) a.Dispose();
        }
    }

    private static void CheckRootKey(ISession session, IObjectHandle key, string keyLabel, string where)
    {
        var wanted = new List<CKA> { CKA.CKA_KEY_TYPE, CKA.CKA_VALUE_LEN, CKA.CKA_TOKEN, CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT };
        var values = session.GetAttributeValue(key, wanted);
        try
        {
            IObjectAttribute Get(CKA type)
            {
                var a = values[wanted.IndexOf(type)];
                return a.CannotBeRead ? throw new InvalidOperationException($"The key '{keyLabel}' in {where} does not reveal {type}, so the KMS cannot check it is fit to be the KEK root.") : a;
            }
            bool Flag(CKA type) => Get(type).GetValueAsBool();

            var keyType = Get(CKA.CKA_KEY_TYPE).GetValueAsUlong();
            if (keyType != (ulong)CKK.CKK_AES)
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is not an AES key (CKA_KEY_TYPE 0x{keyType:x}); the KEK root must be AES-256.");
            var length = Get(CKA.CKA_VALUE_LEN).GetValueAsUlong();
            if (length != RootKeyLength)
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is AES-{length * 8}; the KEK root must be AES-256.");
            if (Flag(CKA.CKA_EXTRACTABLE))
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is extractable (CKA_EXTRACTABLE=true): its value could be exported from the token, so it must not be the KEK root. " +
                    "Use a key generated with CKA_EXTRACTABLE=false, or a new label to let the KMS generate one.");
            if (!Flag(CKA.CKA_SENSITIVE))
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is not sensitive (CKA_SENSITIVE=false): its value can be read from the token, so it must not be the KEK root. " +
                    "Use a key generated with CKA_SENSITIVE=true, or a new label to let the KMS generate one.");
            if (!Flag(CKA.CKA_PRIVATE))
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is public (CKA_PRIVATE=false): anyone who can open the token could unseal KEKs without the PIN, so it must not be the KEK root.");
            if (!Flag(CKA.CKA_TOKEN))
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is a session object (CKA_TOKEN=false) and would vanish with this process, taking every KEK with it.");
            if (!Flag(CKA.CKA_ENCRYPT) || !Flag(CKA.CKA_DECRYPT))
                throw new InvalidOperationException($"The key '{keyLabel}' in {where} is not allowed to both encrypt and decrypt (CKA_ENCRYPT, CKA_DECRYPT), which sealing KEKs needs.");
        }
        finally
        {
            foreach (var a in values) a.Dispose();
        }
    }

    private static void CloseQuietly(ISession session)
    {
        try
        {
            session.Dispose();
        }
        catch (Pkcs11Exception)
        {
            // The session is gone either way; closing is only tidying up.
        }
    }

    private static byte[] HashPin(string pin)
    {
        var bytes = Encoding.UTF8.GetBytes(pin);
        try
        {
            return SHA256.HashData(bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>A PKCS#11 call in an operation failed with <see cref="Result"/>; the session should not be reused.</summary>
    private sealed class SessionSpoiledException(CKR result) : Exception(result.ToString())
    {
        public CKR Result { get; } = result;
    }

    /// <summary>The user login on one token, carried by an anchor session, shared by every root on that token in this process.</summary>
    private sealed class TokenLogin(ulong slotId, ISession anchor, byte[] pinHash)
    {
        public ulong SlotId { get; } = slotId;
        public ISession Anchor { get; } = anchor;
        public byte[] PinHash { get; } = pinHash;
        public int References { get; set; } = 1;
    }

    /// <summary>
    /// A PKCS#11 module loaded once per process (C_Initialize and C_Finalize act on the whole process), with its logins.
    /// Every member is called under <see cref="Gate"/>.
    /// </summary>
    private sealed class Module
    {
        private readonly string _path;
        private readonly Dictionary<ulong, TokenLogin> _logins = [];
        private int _references = 1;

        private Module(string path, IPkcs11Library library, DirectDecryptor direct)
        {
            _path = path;
            Library = library;
            Direct = direct;
        }

        public IPkcs11Library Library { get; }
        public DirectDecryptor Direct { get; }

        public static Module Acquire(string path)
        {
            if (Modules.TryGetValue(path, out var existing))
            {
                existing._references++;
                return existing;
            }
            IPkcs11Library? library = null;
            try
            {
                var factories = new Pkcs11InteropFactories();
                // Multi-threaded: the module must do its own locking, as request threads use sessions concurrently.
                library = factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, path, AppType.MultiThreaded);
                var module = new Module(path, library, DirectDecryptor.Load(path));
                Modules.Add(path, module);
                return module;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                library?.Dispose();
                throw new InvalidOperationException($"Cannot load the PKCS#11 module '{path}': {e.Message}", e);
            }
        }

        public void Release()
        {
            if (--_references > 0) return;
            Modules.Remove(_path);
            Direct.Dispose();
            // C_Finalize, then unload.
            Library.Dispose();
        }

        public TokenLogin AcquireLogin(ISlot slot, Pkcs11RootOptions options)
        {
            var pinHash = HashPin(options.UserPin);
            if (_logins.TryGetValue(slot.SlotId, out var existing))
            {
                // The token cannot check a PIN for an application already logged in, so compare with the one that logged in.
                if (!CryptographicOperations.FixedTimeEquals(existing.PinHash, pinHash))
                    throw new InvalidOperationException($"The user PIN for PKCS#11 token '{options.TokenLabel}' is incorrect: it differs from the PIN this process is already logged in with.");
                existing.References++;
                return existing;
            }
            ISession anchor;
            try
            {
                // Read-write: creating the root key (a token object) needs it.
                anchor = slot.OpenSession(SessionType.ReadWrite);
            }
            catch (Pkcs11Exception e)
            {
                throw new InvalidOperationException($"Cannot open a session on PKCS#11 token '{options.TokenLabel}' ({e.RV}).", e);
            }
            var pin = Encoding.UTF8.GetBytes(options.UserPin);
            try
            {
                anchor.Login(CKU.CKU_USER, pin);
            }
            catch (Pkcs11Exception e)
            {
                CloseQuietly(anchor);
                var token = $"PKCS#11 token '{options.TokenLabel}'";
                throw new InvalidOperationException(e.RV switch
                {
                    CKR.CKR_PIN_INCORRECT => $"The user PIN for {token} is incorrect (CKR_PIN_INCORRECT).",
                    CKR.CKR_PIN_LOCKED => $"The user PIN of {token} is locked after too many wrong attempts (CKR_PIN_LOCKED); its security officer must unlock it.",
                    CKR.CKR_PIN_EXPIRED => $"The user PIN of {token} has expired (CKR_PIN_EXPIRED); set a new one.",
                    CKR.CKR_USER_PIN_NOT_INITIALIZED => $"{token} has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED); its security officer must set one.",
                    CKR.CKR_USER_ALREADY_LOGGED_IN => $"Another component of this process is already logged in to {token}, so the KMS cannot check its user PIN.",
                    _ => $"Logging in to {token} as its user failed ({e.RV}).",
                }, e);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(pin);
            }
            var login = new TokenLogin(slot.SlotId, anchor, pinHash);
            _logins.Add(slot.SlotId, login);
            return login;
        }

        public void ReleaseLogin(TokenLogin login)
        {
            if (--login.References > 0) return;
            _logins.Remove(login.SlotId);
            try
            {
                login.Anchor.Logout();
            }
            catch (Pkcs11Exception)
            {
                // Closing the last session logs out anyway.
            }
            CloseQuietly(login.Anchor);
        }
    }

    /// <summary>
    /// <c>C_DecryptInit</c> and one <c>C_Decrypt</c> into a caller's buffer, through the low-level API that matches the
    /// high-level one Pkcs11Interop picked for this platform (same module, already initialised by it).
    /// </summary>
    private abstract class DirectDecryptor : IDisposable
    {
        public static DirectDecryptor Load(string path) => (Platform.NativeULongSize, Platform.StructPackingSize) switch
        {
            (4, 0) => new Api40(path),
            (4, _) => new Api41(path),
            (_, 0) => new Api80(path),
            _ => new Api81(path),
        };

        /// <summary>Decrypts <paramref name="input"/> into <paramref name="output"/>, which must be at least as long as the plaintext.</summary>
        public abstract CKR Decrypt(ulong session, IMechanism mechanism, ulong key, byte[] input, byte[] output, out int length);

        public abstract void Dispose();
    }

    private sealed class Api40(string path) : DirectDecryptor
    {
        private readonly Net.Pkcs11Interop.LowLevelAPI40.Pkcs11Library _library = new(path);

        public override CKR Decrypt(ulong session, IMechanism mechanism, ulong key, byte[] input, byte[] output, out int length)
        {
            length = 0;
            var m = (Net.Pkcs11Interop.LowLevelAPI40.CK_MECHANISM)mechanism.ToMarshalableStructure();
            var rv = _library.C_DecryptInit(checked((uint)session), ref m, checked((uint)key));
            if (rv != CKR.CKR_OK) return rv;
            var written = checked((uint)output.Length);
            rv = _library.C_Decrypt(checked((uint)session), input, checked((uint)input.Length), output, ref written);
            if (rv == CKR.CKR_OK) length = checked((int)written);
            return rv;
        }

        public override void Dispose() => _library.Dispose();
    }

    private sealed class Api41(string path) : DirectDecryptor
    {
        private readonly Net.Pkcs11Interop.LowLevelAPI41.Pkcs11Library _library = new(path);

        public override CKR Decrypt(ulong session, IMechanism mechanism, ulong key, byte[] input, byte[] output, out int length)
        {
            length = 0;
            var m = (Net.Pkcs11Interop.LowLevelAPI41.CK_MECHANISM)mechanism.ToMarshalableStructure();
            var rv = _library.C_DecryptInit(checked((uint)session), ref m, checked((uint)key));
            if (rv != CKR.CKR_OK) return rv;
            var written = checked((uint)output.Length);
            rv = _library.C_Decrypt(checked((uint)session), input, checked((uint)input.Length), output, ref written);
            if (rv == CKR.CKR_OK) length = checked((int)written);
            return rv;
        }

        public override void Dispose() => _library.Dispose();
    }

    private sealed class Api80(string path) : DirectDecryptor
    {
        private readonly Net.Pkcs11Interop.LowLevelAPI80.Pkcs11Library _library = new(path);

        public override CKR Decrypt(ulong session, IMechanism mechanism, ulong key, byte[] input, byte[] output, out int length)
        {
            length = 0;
            var m = (Net.Pkcs11Interop.LowLevelAPI80.CK_MECHANISM)mechanism.ToMarshalableStructure();
            var rv = _library.C_DecryptInit(session, ref m, key);
            if (rv != CKR.CKR_OK) return rv;
            var written = (ulong)output.Length;
            rv = _library.C_Decrypt(session, input, (ulong)input.Length, output, ref written);
            if (rv == CKR.CKR_OK) length = checked((int)written);
            return rv;
        }

        public override void Dispose() => _library.Dispose();
    }

    private sealed class Api81(string path) : DirectDecryptor
    {
        private readonly Net.Pkcs11Interop.LowLevelAPI81.Pkcs11Library _library = new(path);

        public override CKR Decrypt(ulong session, IMechanism mechanism, ulong key, byte[] input, byte[] output, out int length)
        {
            length = 0;
            var m = (Net.Pkcs11Interop.LowLevelAPI81.CK_MECHANISM)mechanism.ToMarshalableStructure();
            var rv = _library.C_DecryptInit(session, ref m, key);
            if (rv != CKR.CKR_OK) return rv;
            var written = (ulong)output.Length;
            rv = _library.C_Decrypt(session, input, (ulong)input.Length, output, ref written);
            if (rv == CKR.CKR_OK) length = checked((int)written);
            return rv;
        }

        public override void Dispose() => _library.Dispose();
    }
}
