// SPDX-License-Identifier: MIT
// Verifies metarisk's signed margin attestation (EIP-712) of a wallet: the signature against the owner-managed
// signer set and its validity windows, the consuming chain, the expiry and the completeness of the report.
// USD figures and the margin ratio are fixed point with 18 decimals (1e18 = 1 USD, 1e18 = a ratio of 1).
pragma solidity ^0.8.19;

struct ChainBlock {
    uint256 chainId;
    uint64 blockNumber;
}

struct SourceTime {
    string source;
    uint64 timestamp;
}

struct MarginAttestation {
    address wallet;
    int256 equityUsd;
    int256 collateralUsd;
    int256 maintenanceMarginUsd;
    int256 initialMarginUsd;
    int256 freeCollateralUsd;
    uint256 marginRatio; // MM / collateral; type(uint256).max when collateral <= 0
    bool complete;
    ChainBlock[] blocks;
    SourceTime[] sources;
    bytes32 reportHash;
    bytes32 paramsHash;
    bytes32 marketHash;
    string model;
    uint64 issuedAt;
    uint64 expiresAt;
}

/// What a consumer reads back from a verified attestation.
struct VerifiedFigures {
    address wallet;
    address signer;
    int256 equityUsd;
    int256 collateralUsd;
    int256 maintenanceMarginUsd;
    int256 initialMarginUsd;
    int256 freeCollateralUsd;
    uint256 marginRatio;
    uint64 issuedAt;
    uint64 expiresAt;
}

contract MetariskVerifier {
    string public constant NAME = "metarisk";
    string public constant VERSION = "1";

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant CHAIN_BLOCK_TYPEHASH = keccak256("ChainBlock(uint256 chainId,uint64 blockNumber)");
    bytes32 private constant SOURCE_TIME_TYPEHASH = keccak256("SourceTime(string source,uint64 timestamp)");
    // EIP-712 encodeType: the primary type, then the types it references in alphabetical order.
    bytes32 private constant ATTESTATION_TYPEHASH = keccak256(
        "MarginAttestation(address wallet,int256 equityUsd,int256 collateralUsd,int256 maintenanceMarginUsd,"
        "int256 initialMarginUsd,int256 freeCollateralUsd,uint256 marginRatio,bool complete,ChainBlock[] blocks,"
        "SourceTime[] sources,bytes32 reportHash,bytes32 paramsHash,bytes32 marketHash,string model,"
        "uint64 issuedAt,uint64 expiresAt)"
        "ChainBlock(uint256 chainId,uint64 blockNumber)"
        "SourceTime(string source,uint64 timestamp)"
    );
    // secp256k1n / 2: a larger s is the malleable twin of a valid signature (EIP-2)
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    struct Window {
        uint64 validFrom;
        uint64 validUntil;
    }

    address public owner;
    mapping(address => Window) public signerWindow;
    bytes32 private immutable domainSeparator;

    error NotOwner(address caller);
    error WrongChain(uint256 attestedChainId, uint256 currentChainId);
    error InvalidSignature();
    error SignerNotAuthorized(address recovered);
    error SignerOutsideWindow(address signer, uint64 validFrom, uint64 validUntil);
    error Expired(uint64 expiresAt, uint256 currentTime);
    error IncompleteReport();

    event SignerWindowSet(address indexed signer, uint64 validFrom, uint64 validUntil);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    constructor(address initialOwner) {
        owner = initialOwner;
        domainSeparator = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
        emit OwnershipTransferred(address(0), initialOwner);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// Adds, rotates out (validUntil set to the end of its overlap) or revokes (validUntil in the past) a signer.
    function setSigner(address signer, uint64 validFrom, uint64 validUntil) external onlyOwner {
        signerWindow[signer] = Window(validFrom, validUntil);
        emit SignerWindowSet(signer, validFrom, validUntil);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function domainSeparatorV4() external view returns (bytes32) {
        return domainSeparator;
    }

    /// The EIP-712 digest the service signed for `attestation` on this chain and verifier.
    function digest(MarginAttestation calldata attestation) public view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, hashAttestation(attestation)));
    }

    /// The attestation's figures, or a revert naming why it is refused. `chainId` is the domain's chain id as the
    /// service issued it: an attestation for another chain is refused by name rather than as a bad signature.
    function verify(MarginAttestation calldata attestation, uint256 chainId, bytes calldata signature)
        external
        view
        returns (VerifiedFigures memory figures)
    {
        if (chainId != block.chainid) revert WrongChain(chainId, block.chainid);
        address signer = recover(digest(attestation), signature);
        Window memory window = signerWindow[signer];
        if (window.validUntil == 0) revert SignerNotAuthorized(signer);
        if (attestation.issuedAt < window.validFrom || attestation.issuedAt > window.validUntil
            || block.timestamp > window.validUntil) {
            revert SignerOutsideWindow(signer, window.validFrom, window.validUntil);
        }
        if (block.timestamp > attestation.expiresAt) revert Expired(attestation.expiresAt, block.timestamp);
        if (!attestation.complete) revert IncompleteReport();
        figures = VerifiedFigures({
            wallet: attestation.wallet,
            signer: signer,
            equityUsd: attestation.equityUsd,
            collateralUsd: attestation.collateralUsd,
            maintenanceMarginUsd: attestation.maintenanceMarginUsd,
            initialMarginUsd: attestation.initialMarginUsd,
            freeCollateralUsd: attestation.freeCollateralUsd,
            marginRatio: attestation.marginRatio,
            issuedAt: attestation.issuedAt,
            expiresAt: attestation.expiresAt
        });
    }

    function hashAttestation(MarginAttestation calldata a) public pure returns (bytes32) {
        // two halves: one abi.encode of all seventeen words would not fit the stack
        bytes memory figures = abi.encode(
            ATTESTATION_TYPEHASH,
            a.wallet,
            a.equityUsd,
            a.collateralUsd,
            a.maintenanceMarginUsd,
            a.initialMarginUsd,
            a.freeCollateralUsd,
            a.marginRatio,
            a.complete
        );
        bytes memory inputs = abi.encode(
            hashBlocks(a.blocks),
            hashSources(a.sources),
            a.reportHash,
            a.paramsHash,
            a.marketHash,
            keccak256(bytes(a.model)),
            a.issuedAt,
            a.expiresAt
        );
        return keccak256(bytes.concat(figures, inputs));
    }

    // The array hashes below write each element's words in scratch memory past the free memory pointer, without
    // moving it: hashing allocates nothing, so memory (and its quadratic cost) does not grow with the arrays.
    function hashBlocks(ChainBlock[] calldata blocks) private pure returns (bytes32 result) {
        bytes32 typeHash = CHAIN_BLOCK_TYPEHASH;
        uint256 count = blocks.length;
        assembly {
            let hashes := mload(0x40)
            let words := add(hashes, mul(count, 0x20))
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let item := add(blocks.offset, mul(i, 0x40)) // static struct: two words inline
                mstore(words, typeHash)
                mstore(add(words, 0x20), calldataload(item))
                mstore(add(words, 0x40), and(calldataload(add(item, 0x20)), 0xffffffffffffffff))
                mstore(add(hashes, mul(i, 0x20)), keccak256(words, 0x60))
            }
            result := keccak256(hashes, mul(count, 0x20))
        }
    }

    function hashSources(SourceTime[] calldata sources) private pure returns (bytes32 result) {
        uint256 count = sources.length;
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            hashes[i] = hashSource(SOURCE_TIME_TYPEHASH, sources[i].source, sources[i].timestamp);
        }
        assembly {
            result := keccak256(add(hashes, 0x20), mul(count, 0x20))
        }
    }

    function hashSource(bytes32 typeHash, string calldata source, uint64 stamp) private pure returns (bytes32 h) {
        assembly {
            let scratch := mload(0x40)
            calldatacopy(scratch, source.offset, source.length)
            let sourceHash := keccak256(scratch, source.length)
            mstore(scratch, typeHash)
            mstore(add(scratch, 0x20), sourceHash)
            mstore(add(scratch, 0x40), stamp)
            h := keccak256(scratch, 0x60)
        }
    }

    function recover(bytes32 hash, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert InvalidSignature();
        signer = ecrecover(hash, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
    }
}
